"""The seed guide's one call, on the default store: record a generation, read the history.

python examples/quickstart.py [STORE_URL]     # default: $GENSTORE_URL, else ./genstore-data
"""

from __future__ import annotations

import io
import sys

import genstore
from PIL import Image, ImageDraw


def drawn(text: str, color: str) -> bytes:
    """A small PNG standing in for a provider's image."""
    image = Image.new("RGB", (256, 144), color)
    ImageDraw.Draw(image).text((10, 60), text, fill="white")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def main(url: str | None = None) -> int:
    with genstore.open_store(url) as store:
        photo = drawn("input photo", "navy")
        ok = store.save_complete_operation(
            operation_type=genstore.OperationType.IMAGE_EDIT_SINGLE,
            prompt="make it a watercolour",
            parameters={"strength": 0.6, "model": "stand-in"},
            input_images=[photo],
            result=drawn("watercolour", "teal"),
            user_id="user_quickstart",
        )
        failed = store.save_complete_operation(
            operation_type=genstore.OperationType.TEXT_TO_VIDEO,
            prompt="un chat qui danse",
            parameters={"duration": 5},
            error="provider timeout after 120 s",
            user_id="user_quickstart",
        )
        print(
            f"saved {ok.operation_id} ({ok.record.status}) and {failed.operation_id} "
            f"({failed.record.status}) in {store.blobs.url}"
        )
        for record in store.history(user_id="user_quickstart", limit=5).items:
            result = record.result.key if record.result else record.error
            print(f"  {record.created_at:%H:%M:%S}  {record.operation_type:<18} {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
