"""The same service code on local files, S3 or Supabase: only GENSTORE_URL changes.

    GENSTORE_URL=./genstore-data                       python examples/swap_backends.py
    GENSTORE_URL=s3://my-bucket/genstore               python examples/swap_backends.py   # AWS_* env
    GENSTORE_URL='s3://bucket/p?endpoint_url=http://127.0.0.1:9000'  ...                 # MinIO
    GENSTORE_URL=supabase://generations                python examples/swap_backends.py   # SUPABASE_*
    GENSTORE_CATALOG=postgresql://app@db/app           (any of the above, many instances)

Moving a live store between them: ``genstore migrate SRC_URL DST_URL --verify``.
"""

from __future__ import annotations

import io
import sys

import genstore
from PIL import Image


def record_one(store: genstore.Store) -> genstore.SaveResult:
    """What a generation route does, whatever the backend."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "orange").save(buf, "PNG")
    return store.save_complete_operation(
        operation_type="text_to_image",
        prompt="un chat orange",
        parameters={"aspectRatio": "1:1"},
        result=buf.getvalue(),
        user_id="user_swap",
    )


def main() -> int:
    with genstore.open_store() as store:  # GENSTORE_URL / GENSTORE_CATALOG decide everything
        saved = record_one(store)
        again = store.get_operation(saved.operation_id)
        assert again == saved.record
        print(f"{store.blobs.url} [{type(store.catalog).__name__}]: {saved.operation_id}")
        print(f"  result at {store.artifact_url(again.result) if again.result else None}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
