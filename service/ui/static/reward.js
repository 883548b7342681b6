// The significance-aware length reward of docs/method.md#reward, mirrored from
// service/reward/significance.py so the page can show what a response would earn.
(function (global) {
  "use strict";

  function cosClamped(x) {
    return Math.cos(Math.min(Math.max(x, 0), Math.PI / 2));
  }

  // counts: {significant, insignificant}; reference likewise.
  // Returns {rI, rS, degenerate}: both ratios are 0 unless the response has units and the
  // reference has both kinds of unit (docs/method.md#reward).
  function ratios(counts, reference) {
    const total = counts.significant + counts.insignificant;
    if (total > 0 && reference.significant > 0 && reference.insignificant > 0) {
      return {
        rI: counts.insignificant / reference.insignificant,
        rS: counts.significant / reference.significant,
        degenerate: false,
      };
    }
    return { rI: 0, rS: 0, degenerate: total > 0 };
  }

  // params: {lambda_c, lambda_w_n, lambda_w_e}
  function lengthReward(correct, counts, reference, k, params) {
    if (counts.significant + counts.insignificant <= 0) return 0;
    const r = ratios(counts, reference);
    if (correct) return params.lambda_c * cosClamped(r.rI);
    const wrong = params.lambda_w_n * (cosClamped(r.rI) - 1) + k * r.rS - params.lambda_w_e;
    return Math.min(0, wrong);
  }

  global.SigReward = { cosClamped: cosClamped, ratios: ratios, lengthReward: lengthReward };
})(window);
