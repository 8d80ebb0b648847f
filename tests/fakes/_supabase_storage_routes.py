"""The fake's Storage routes (see ``supabase_server``'s docstring for what they follow)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

import jwt
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ._supabase_list import file_entry, list_v1, list_v2, stamp, visible_objects
from .supabase_server import AuthFailure, Bucket, Caller, FakeSupabase, StoredObject

Handler = Callable[[Request], Awaitable[Response]]


def error(status: int, name: str, message: str, code: str | None = None) -> JSONResponse:
    """A Storage error as the real server sends it: HTTP 400 for 4xx, the real status inside."""
    body: dict[str, Any] = {"statusCode": str(status), "error": name, "message": message}
    if code is not None:
        body["code"] = code
    http_status = 400 if 400 <= status < 500 and status != 416 else status
    return JSONResponse(body, status_code=http_status)


def not_found() -> JSONResponse:
    return error(404, "not_found", "Object not found", "NoSuchKey")


def no_bucket() -> JSONResponse:
    return error(404, "Bucket not found", "Bucket not found", "NoSuchBucket")


def denied(message: str = "new row violates row-level security policy") -> JSONResponse:
    return error(403, "Unauthorized", message, "AccessDenied")


def storage_routes(fake: FakeSupabase) -> list[Route]:
    """The Storage API routes, relative to the storage root."""

    def authed(handler: Callable[[Request, Caller], Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                caller = fake.caller(request)
            except AuthFailure as failure:
                if failure.kind == "missing":
                    return error(
                        400,
                        "Error",
                        "headers must have required property 'authorization'",
                        "InvalidRequest",
                    )
                if failure.kind == "role":
                    return error(500, "DatabaseError", failure.message, "DatabaseError")
                return denied(failure.message)
            return await handler(request, caller)

        return endpoint

    def visible(caller: Caller, name: str) -> bool:
        """The migration's read policy: own ``images/<sub>/`` objects for signed-in users."""
        if caller.privileged:
            return True
        return caller.sub is not None and name.startswith(f"images/{caller.sub}/")

    def bucket_of(request: Request) -> Bucket | None:
        return fake.buckets.get(request.path_params["bucket"])

    def lookup(request: Request, caller: Caller | None) -> StoredObject | JSONResponse:
        bucket = bucket_of(request)
        if bucket is None:
            return no_bucket()
        path = request.path_params["path"]
        obj = bucket.objects.get(path)
        if obj is None or (caller is not None and not visible(caller, path)):
            return not_found()
        return obj

    def serve(request: Request, obj: StoredObject) -> Response:
        size = len(obj.data)
        start, end = 0, size - 1
        status = 200
        headers = {
            "etag": f'"{obj.etag}"',
            "cache-control": obj.cache_control,
            "last-modified": obj.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "accept-ranges": "bytes",
        }
        wanted = request.headers.get("range")
        if wanted:
            parsed = _parse_range(wanted, size)
            if parsed is None:
                return JSONResponse(
                    {
                        "statusCode": "416",
                        "error": "InvalidRange",
                        "code": "InvalidRange",
                        "message": "The requested range is not satisfiable",
                    },
                    status_code=416,
                )
            start, end = parsed
            status = 206
            headers["content-range"] = f"bytes {start}-{end}/{size}"
        body = obj.data[start : end + 1]
        headers["content-length"] = str(len(body))

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(body), 64 * 1024):
                yield body[i : i + 64 * 1024]

        return StreamingResponse(chunks(), status, headers, media_type=obj.content_type)

    # -- buckets ------------------------------------------------------------------------------

    async def create_bucket(request: Request, caller: Caller) -> Response:
        body = await request.json()
        if not caller.privileged:
            return denied()
        bucket_id = str(body.get("id") or body.get("name") or "")
        if not bucket_id:
            return error(400, "Error", "body must have required property 'name'", "InvalidRequest")
        with fake.lock:
            if bucket_id in fake.buckets:
                return error(409, "Duplicate", "The resource already exists", "BucketAlreadyExists")
            fake.buckets[bucket_id] = Bucket(
                bucket_id,
                public=bool(body.get("public", False)),
                file_size_limit=body.get("file_size_limit"),
                allowed_mime_types=body.get("allowed_mime_types"),
            )
        return JSONResponse({"name": bucket_id})

    async def list_buckets(request: Request, caller: Caller) -> Response:
        with fake.lock:
            shown = [b.as_json() for b in fake.buckets.values() if caller.privileged]
        return JSONResponse(shown)

    async def get_bucket(request: Request, caller: Caller) -> Response:
        bucket = fake.buckets.get(request.path_params["bucket_id"])
        if bucket is None or not caller.privileged:
            return no_bucket()
        return JSONResponse(bucket.as_json())

    async def delete_bucket(request: Request, caller: Caller) -> Response:
        with fake.lock:
            bucket = fake.buckets.get(request.path_params["bucket_id"])
            if bucket is None or not caller.privileged:
                return no_bucket()
            if bucket.objects:
                return error(409, "ResourceNotEmpty", "The bucket you tried to delete is not empty")
            del fake.buckets[bucket.id]
        return JSONResponse({"message": "Successfully deleted"})

    async def empty_bucket(request: Request, caller: Caller) -> Response:
        with fake.lock:
            bucket = fake.buckets.get(request.path_params["bucket_id"])
            if bucket is None or not caller.privileged:
                return no_bucket()
            bucket.objects.clear()
        return JSONResponse({"message": "Successfully emptied"})

    # -- objects ------------------------------------------------------------------------------

    async def write(request: Request, caller: Caller) -> Response:
        path = request.path_params["path"]
        if not valid_key(path):
            return error(400, "InvalidKey", f"Invalid key: {path}", "InvalidKey")
        bucket = bucket_of(request)
        upsert = request.method == "PUT" or request.headers.get("x-upsert", "false") == "true"
        # As on the real server, x-upsert: false is a check made before the upload, not a lock:
        # uploads racing for one key may all pass it, and then each replaces the last.
        if not upsert and bucket is not None and path in bucket.objects:
            return error(409, "Duplicate", "The resource already exists", "KeyAlreadyExists")
        await asyncio.sleep(0)  # the real server's database round trip between check and write
        form = await request.form()
        part = form.get("file")
        if not isinstance(part, UploadFile):
            return error(400, "Error", "no file in the multipart body", "InvalidRequest")
        data = await part.read()
        content_type = part.content_type or "application/octet-stream"
        cache = str(form.get("cacheControl") or "3600")
        await form.close()
        if bucket is None:
            return no_bucket()
        if not caller.privileged:
            return denied()
        limit = min(
            bucket.file_size_limit or fake.global_file_size_limit, fake.global_file_size_limit
        )
        if len(data) > limit:
            return error(
                413,
                "Payload too large",
                "The object exceeded the maximum allowed size",
                "EntityTooLarge",
            )
        if bucket.allowed_mime_types and not _mime_allowed(content_type, bucket.allowed_mime_types):
            return error(
                415,
                "invalid_mime_type",
                f"mime type {content_type} is not supported",
                "InvalidMimeType",
            )
        with fake.lock:
            existing = bucket.objects.get(path)
            if request.method == "PUT" and existing is None:
                return not_found()
            obj = StoredObject(data, content_type, f"max-age={cache}")
            if existing is not None:
                obj.id, obj.created_at = existing.id, existing.created_at
            bucket.objects[path] = obj
        return JSONResponse({"Key": f"{bucket.id}/{path}", "Id": obj.id})

    async def download(request: Request, caller: Caller) -> Response:
        found = lookup(request, caller)
        return found if isinstance(found, Response) else serve(request, found)

    async def info(request: Request, caller: Caller) -> Response:
        found = lookup(request, caller)
        if isinstance(found, Response):
            return found
        return JSONResponse(
            {
                "id": found.id,
                "name": request.path_params["path"],
                "version": found.id,
                "bucket_id": request.path_params["bucket"],
                "size": len(found.data),
                "content_type": found.content_type,
                "cache_control": found.cache_control,
                "etag": f'"{found.etag}"',
                "metadata": {},
                "last_modified": stamp(found.updated_at),
                "created_at": stamp(found.created_at),
            }
        )

    def listed_objects(request: Request, caller: Caller) -> list[tuple[str, StoredObject]] | None:
        bucket = bucket_of(request)
        if bucket is None:
            return None
        with fake.lock:
            return visible_objects(bucket.objects, lambda name: visible(caller, name))

    async def list_objects(request: Request, caller: Caller) -> Response:
        body = await request.json()
        objects = listed_objects(request, caller)
        return no_bucket() if objects is None else JSONResponse(list_v1(objects, body))

    async def list_objects_v2(request: Request, caller: Caller) -> Response:
        body = await request.json()
        objects = listed_objects(request, caller)
        # The real server answers an empty listing for a bucket that does not exist.
        return JSONResponse(list_v2(objects or [], body))

    async def remove(request: Request, caller: Caller) -> Response:
        body = await request.json()
        bucket = bucket_of(request)
        if bucket is None:
            return no_bucket()
        removed = []
        with fake.lock:
            for path in body.get("prefixes") or []:
                obj = bucket.objects.get(path)
                if obj is None or not caller.privileged:  # no delete policy for users
                    continue
                del bucket.objects[path]
                removed.append({"bucket_id": bucket.id, **file_entry(path, obj)})
        return JSONResponse(removed)

    async def move_or_copy(request: Request, caller: Caller) -> Response:
        body = await request.json()
        bucket = fake.buckets.get(str(body.get("bucketId")))
        if bucket is None:
            return no_bucket()
        if not caller.privileged:
            return denied()
        source, dest = str(body.get("sourceKey")), str(body.get("destinationKey"))
        if not valid_key(dest):
            return error(400, "InvalidKey", f"Invalid key: {dest}", "InvalidKey")
        with fake.lock:
            obj = bucket.objects.get(source)
            if obj is None:
                return not_found()
            # Atomic, as on the real server (its unique index on names decides racing moves).
            if dest in bucket.objects:
                return error(
                    409, "Duplicate", "The resource already exists", "ResourceAlreadyExists"
                )
            copy = StoredObject(obj.data, obj.content_type, obj.cache_control)
            bucket.objects[dest] = copy
            if request.url.path.endswith("/move"):
                del bucket.objects[source]
                return JSONResponse({"message": "Successfully moved"})
        return JSONResponse({"Key": f"{bucket.id}/{dest}", "Id": copy.id})

    # -- URLs ---------------------------------------------------------------------------------

    def token_for(bucket: str, path: str, expires_in: int) -> str:
        now = int(time.time())
        claims = {"url": f"{bucket}/{path}", "iat": now, "exp": now + expires_in}
        return jwt.encode(claims, fake.jwt_secret, algorithm="HS256")

    def signed_path(bucket: str, path: str, token: str) -> str:
        return f"/object/sign/{quote(bucket, safe='')}/{quote(path, safe='/')}?token={token}"

    async def sign_one(request: Request, caller: Caller) -> Response:
        body = await request.json()
        if bucket_of(request) is None:
            return not_found()  # the real server signs nothing and says NoSuchKey, not NoSuchBucket
        found = lookup(request, caller)
        if isinstance(found, Response):
            return found
        bucket, path = request.path_params["bucket"], request.path_params["path"]
        token = token_for(bucket, path, int(body.get("expiresIn", 60)))
        return JSONResponse({"signedURL": signed_path(bucket, path, token)})

    async def sign_many(request: Request, caller: Caller) -> Response:
        body = await request.json()
        bucket = bucket_of(request)
        if bucket is None:
            return no_bucket()
        expires = int(body.get("expiresIn", 60))
        out = []
        for path in body.get("paths") or []:
            if path in bucket.objects and visible(caller, path):
                token = token_for(bucket.id, path, expires)
                out.append(
                    {"error": None, "path": path, "signedURL": signed_path(bucket.id, path, token)}
                )
            else:
                out.append(
                    {
                        "error": "Either the object does not exist or you do not have access to it",
                        "path": path,
                        "signedURL": None,
                    }
                )
        return JSONResponse(out)

    async def fetch_signed(request: Request) -> Response:
        token = request.query_params.get("token")
        if not token:
            return error(
                400, "Error", "querystring must have required property 'token'", "InvalidRequest"
            )
        try:
            claims = fake.decode(token)
        except AuthFailure as failure:
            message = (
                "jwt expired" if failure.kind == "expired" else "signature verification failed"
            )
            return error(400, "InvalidJWT", message, "InvalidJWT")
        wanted = f"{request.path_params['bucket']}/{request.path_params['path']}"
        if claims.get("url") != wanted:
            return error(400, "InvalidSignature", "Invalid signature", "InvalidSignature")
        found = lookup(request, None)
        return found if isinstance(found, Response) else serve(request, found)

    async def fetch_public(request: Request) -> Response:
        bucket = bucket_of(request)
        if bucket is None or not bucket.public:
            return not_found()
        found = lookup(request, None)
        return found if isinstance(found, Response) else serve(request, found)

    return [
        Route("/bucket", authed(create_bucket), methods=["POST"]),
        Route("/bucket", authed(list_buckets), methods=["GET"]),
        Route("/bucket/{bucket_id}/empty", authed(empty_bucket), methods=["POST"]),
        Route("/bucket/{bucket_id}", authed(get_bucket), methods=["GET"]),
        Route("/bucket/{bucket_id}", authed(delete_bucket), methods=["DELETE"]),
        Route("/object/list/{bucket}", authed(list_objects), methods=["POST"]),
        Route("/object/list-v2/{bucket}", authed(list_objects_v2), methods=["POST"]),
        Route("/object/info/{bucket}/{path:path}", authed(info), methods=["GET"]),
        Route("/object/sign/{bucket}/{path:path}", fetch_signed, methods=["GET"]),
        Route("/object/sign/{bucket}/{path:path}", authed(sign_one), methods=["POST"]),
        Route("/object/sign/{bucket}", authed(sign_many), methods=["POST"]),
        Route("/object/public/{bucket}/{path:path}", fetch_public, methods=["GET"]),
        Route("/object/move", authed(move_or_copy), methods=["POST"]),
        Route("/object/copy", authed(move_or_copy), methods=["POST"]),
        Route("/object/{bucket}/{path:path}", authed(write), methods=["POST", "PUT"]),
        Route("/object/{bucket}/{path:path}", authed(download), methods=["GET"]),
        Route("/object/{bucket}", authed(remove), methods=["DELETE"]),
    ]


_VALID_KEY = re.compile(r"[A-Za-z0-9_/!.*'() &$=@;:+,?-]+")
"""storage-api's ``isValidKey`` (src/storage/limits.ts): the key after URL decoding, so ``%41``
is already ``A`` here, as on the real server."""


def valid_key(key: str) -> bool:
    return _VALID_KEY.fullmatch(key) is not None


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            start, end = max(0, size - int(last)), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    return (start, end) if 0 <= start <= end < size else None


def _mime_allowed(content_type: str, allowed: list[str]) -> bool:
    mime = content_type.split(";")[0].strip().lower()
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern == mime or (pattern.endswith("/*") and mime.startswith(pattern[:-1])):
            return True
    return False
