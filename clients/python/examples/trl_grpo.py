"""TRL GRPOTrainer with sigreward as its reward function.

    sigreward serve --model ./lingua2-checkpoint --port 8000 &
    python trl_grpo.py --url http://127.0.0.1:8000 --model Qwen/Qwen2.5-0.5B-Instruct

The dataset needs a "prompt" column and an answer column ("answer" / "solution" / "label" /
"ground_truth", or --label-column); the server verifies each completion against it.
"""

from __future__ import annotations

import argparse

from datasets import load_dataset
from trl import GRPOConfig, GRPOTrainer

from sigreward_client import RewardClient
from sigreward_client.trl import make_trl_reward_func


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--run-id", default="trl-grpo-1")
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", default="openai/gsm8k")
    parser.add_argument("--label-column", default=None)
    args = parser.parse_args()

    client = RewardClient(args.url, args.run_id)
    # Groups of identical prompts are GRPO's groups: "group" references use them.
    client.configure(significance="classifier", reference="group")
    reward = make_trl_reward_func(client, label_column=args.label_column)

    dataset = load_dataset(args.dataset, "main", split="train")
    dataset = dataset.map(
        lambda row: {"prompt": row["question"], "answer": row["answer"].split("####")[-1].strip()}
    )
    trainer = GRPOTrainer(
        model=args.model,
        reward_funcs=[reward],
        args=GRPOConfig(output_dir="grpo-out", num_generations=8, max_completion_length=1024),
        train_dataset=dataset,
        callbacks=[reward.callback],  # finishes the last step when training ends
    )
    trainer.train()


if __name__ == "__main__":
    main()
