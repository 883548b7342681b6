from tests.client.fixtures import (  # noqa: F401  (pytest fixtures)
    classifier_server,
    small_server,
    tiny_bert_dir,
    values_server,
)
from tests.support.server import server_factory  # noqa: F401  (pytest fixture)
