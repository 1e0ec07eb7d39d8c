#!/usr/bin/env python3
"""Writes a synthetic concil cache for scripts/bench-cache.sh: IMAGES image records, LAYERS
layer files (random bytes, LAYER_SIZE each, with their checksum files and blob symlinks), a
manifest and a config per image, laid out as concil lays them out. Image i uses base layer
i % 100 (shared by many images) and four layers of its own; the layers no image uses stand
for concil 1.0's. Record mtimes (last use) spread over 30 days.

    bench-cache-gen.py CACHE_DIR [IMAGES [LAYERS [LAYER_SIZE]]]
"""
import hashlib
import json
import os
import random
import sys

cache, images, layers, layer_size = sys.argv[1], 2000, 10000, 65536
if len(sys.argv) > 2:
    images = int(sys.argv[2])
if len(sys.argv) > 3:
    layers = int(sys.argv[3])
if len(sys.argv) > 4:
    layer_size = int(sys.argv[4])
BASE = 100
if BASE + 4 * images > layers:
    sys.exit(f"{layers} layers are too few for {images} images")

rng = random.Random(7)
for sub in ["manifest", "config", "layers", "tmp", "locks", "checksums", "images"]:
    os.makedirs(os.path.join(cache, sub), mode=0o755, exist_ok=True)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)


layer_names = []  # (blob digest, diff_id)
for index in range(layers):
    content = rng.randbytes(layer_size)
    diff_id = "sha256:%064x" % rng.getrandbits(256)
    blob = "sha256:%064x" % rng.getrandbits(256)
    path = os.path.join(cache, "layers", diff_id)
    write(path, content)
    inode = os.stat(path).st_ino
    write(os.path.join(cache, "checksums", diff_id),
          f"{digest(content)} {len(content)} {inode}\n".encode())
    os.symlink(diff_id, os.path.join(cache, "layers", blob))
    layer_names.append((blob, diff_id))

now = int(__import__("time").time())
for image in range(images):
    used = [layer_names[image % BASE]] + [layer_names[BASE + 4 * image + k] for k in range(4)]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [d for _, d in used]}}).encode()
    config_digest = digest(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"digest": config_digest, "size": len(config)},
                           "layers": [{"digest": b, "size": layer_size} for b, _ in used]}).encode()
    manifest_digest = digest(manifest)
    write(os.path.join(cache, "config", config_digest), config)
    write(os.path.join(cache, "manifest", manifest_digest), manifest)
    reference = f"registry.example/bench/image{image}:v1"
    record = {"reference": reference, "requested_platform": "linux/amd64", "platform": "linux/amd64",
              "resolved_digest": manifest_digest, "manifest_digest": manifest_digest,
              "config_digest": config_digest,
              "layers": [{"digest": b, "diff_id": d,
                          "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "size": layer_size} for b, d in used],
              "verified": "none", "pulled_at": now}
    key = digest(f"{reference}\nlinux/amd64".encode())
    path = os.path.join(cache, "images", key)
    write(path, json.dumps(record, indent=2).encode())
    last_use = now - rng.randrange(30 * 86400)
    os.utime(path, (last_use, last_use))
