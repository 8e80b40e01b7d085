#!/usr/bin/python3
"""torchvision's video protocol on small generated videos, as a fixture for test/video-files.test.ts.

    /usr/bin/python3 tools/video_reference.py [OUTDIR]     (default test/fixtures/video)

Needs Debian's python3-torch, python3-torchvision, python3-av and ffmpeg. Writes:

- a few short videos made with FFmpeg from generated frames (mp4 at 30 and 30000/1001 fps, webm at
  25 fps, avi at 10 fps), committed with the fixture so the test does not depend on an encoder;
- reference.json: for each video, torchvision's frame timestamps count and fps, the clips that
  VideoClips(frame_rate=15, clip_length_in_frames=4) and UniformClipSampler(5) choose, each clip's
  frames (sha256 of the decoded uint8 THWC bytes) and the clip after the Kinetics eval transform of
  torchvision's video weights (Resize((18, 24)) bilinear without antialiasing on uint8, CenterCrop(16):
  the 112-pixel preset scaled to 16), as base64 of the uint8 bytes;
- torch.linspace and VideoClips' resampling indices for many sizes, and torch's bilinear resize
  (antialias=False) of seeded random uint8 images, to check the arithmetic that picks frames and
  resizes them.
"""
import base64
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torchvision
from torchvision.datasets.samplers import UniformClipSampler
from torchvision.datasets.video_utils import VideoClips
import torchvision.transforms.functional as F

torch.set_num_threads(2)
out = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/video"
os.makedirs(out, exist_ok=True)
torchvision.set_video_backend("pyav")

CLIP_LEN = 4
CLIPS_PER_VIDEO = 5
FRAME_RATE = 15
RESIZE = (18, 24)
CROP = 16

# (file, frames per second, frame count, codec arguments)
VIDEOS = [
    ("a30.mp4", "30", 61, ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-colorspace", "bt709"]),
    ("b2997.mp4", "30000/1001", 50, ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "2"]),
    ("c25.webm", "25", 40, ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p"]),
    ("d10.avi", "10", 12, ["-c:v", "mpeg4", "-q:v", "3"]),
]
W, H = 40, 30


def frames(n, seed):
    """Moving gradients and a square: frames whose every pixel differs from frame to frame."""
    g = np.random.default_rng(seed)
    base = g.integers(0, 256, size=(H, W, 3)).astype(np.int32)
    yy, xx = np.mgrid[0:H, 0:W]
    yy, xx = yy[..., None], xx[..., None]
    for t in range(n):
        f = (base + 7 * t + xx * 3 + yy * 2) % 256
        f[((yy[..., 0] // 6 + t) % 5) == 0] = [250, 40, 40]
        yield f.astype(np.uint8)


for k, (name, fps, n, codec) in enumerate(VIDEOS):
    path = os.path.join(out, name)
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
           "-r", fps, "-i", "pipe:0", *codec, path]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for f in frames(n, k):
        p.stdin.write(f.tobytes())
    p.stdin.close()
    assert p.wait() == 0, name

paths = [os.path.join(out, v[0]) for v in VIDEOS]
vc = VideoClips(paths, clip_length_in_frames=CLIP_LEN, frames_between_clips=1, frame_rate=FRAME_RATE,
                output_format="THWC")
sampled = list(UniformClipSampler(vc, CLIPS_PER_VIDEO))
videos = []
for i, name in enumerate(v[0] for v in VIDEOS):
    videos.append({"file": name, "timestamps": len(vc.video_pts[i]), "fps": vc.video_fps[i],
                   "clips": len(vc.clips[i]), "sampled": []})
for idx in sampled:
    video, _, _, vi = vc.get_clip(idx)
    _, clip = vc.get_clip_location(idx)
    raw = video.numpy().astype(np.uint8)
    t = video.permute(0, 3, 1, 2)
    t = F.resize(t, list(RESIZE), antialias=False)
    t = F.center_crop(t, [CROP, CROP])
    videos[vi]["sampled"].append({
        "clip": int(clip),
        "frames": hashlib.sha256(np.ascontiguousarray(raw).tobytes()).hexdigest(),
        "kinetics": base64.b64encode(t.permute(0, 2, 3, 1).contiguous().numpy().tobytes()).decode(),
    })

g = np.random.default_rng(7)
linspace = []
for _ in range(300):
    length = int(g.integers(1, 400))
    K = int(g.choice([1, 2, 3, 5, 7, 10, 16]))
    start = int(g.choice([0, int(g.integers(0, 4_000_000))]))
    v = torch.linspace(start, start + length - 1, steps=K).floor().to(torch.int64) - start
    linspace.append({"start": start, "length": length, "K": K, "clips": v.tolist()})

resample = []
for fps in [30.0, 25.0, 24.0, 29.97002997002997, 59.94005994005994, 10.0, 12.5, 15.0, 7.0]:
    for n in [1, 15, 16, 17, 61, 300, 301]:
        total = n * (float(FRAME_RATE) / fps)
        idx = VideoClips._resample_video_idx(int(np.floor(total)), fps, FRAME_RATE)
        got = torch.arange(n)[idx] if isinstance(idx, slice) else idx
        resample.append({"frames": n, "fps": fps, "rate": FRAME_RATE, "indices": got.tolist()})

resize = []
for k in range(16):
    h, w = int(g.integers(6, 48)), int(g.integers(6, 48))
    oh, ow = int(g.integers(4, 72)), int(g.integers(4, 72))
    img = torch.from_numpy(g.integers(0, 256, size=(3, h, w)).astype(np.uint8))
    r = F.resize(img, [oh, ow], antialias=False)
    resize.append({"height": h, "width": w, "outHeight": oh, "outWidth": ow,
                   "input": base64.b64encode(img.numpy().tobytes()).decode(),
                   "output": base64.b64encode(r.numpy().tobytes()).decode()})

ref = {
    "made_by": "tools/video_reference.py",
    "torch": torch.__version__, "torchvision": torchvision.__version__,
    "clip_len": CLIP_LEN, "clips_per_video": CLIPS_PER_VIDEO, "frame_rate": FRAME_RATE,
    "resize": list(RESIZE), "crop": CROP,
    "videos": videos, "linspace": linspace, "resample": resample, "bilinear": resize,
}
with open(os.path.join(out, "reference.json"), "w") as fh:
    json.dump(ref, fh, separators=(",", ":"))
    fh.write("\n")
print(f"wrote {out}/reference.json: {len(videos)} videos, {len(sampled)} clips")
