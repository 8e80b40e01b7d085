#!/usr/bin/python3
"""Small generated data sets in the formats of the paper's Table 3, for docs/table3.md.

    /usr/bin/python3 tools/table3_data.py OUTDIR

Writes (seeded, a few seconds; needs Debian's python3-pil, python3-numpy and ffmpeg):

    OUTDIR/coco/val2017/*.jpg, OUTDIR/coco/annotations/instances_val2017.json
        COCO instances: polygons of VOC categories and of one that VOC has not (stop sign), a crowd
        region as uncompressed RLE, images of different sizes; train2017 likewise
    OUTDIR/voc/VOC2012/JPEGImages, SegmentationClass (palette PNGs, 255 on object borders),
        SegmentationClassAug (the SBD-augmented masks, gray PNGs), ImageSets/Segmentation/{train_aug,val}.txt
    OUTDIR/kinetics/{train,val}/<class>/<video>.mp4
        30 frames per second, 160 × 120, 3 seconds, made with FFmpeg from generated frames
"""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw

out = sys.argv[1] if len(sys.argv) > 1 else "out/table3-data"
rng = np.random.default_rng(27)

VOC_IDS = [0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72]
NAMES = {1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train", 9: "boat",
         13: "stop sign", 16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep", 21: "cow", 44: "bottle",
         62: "chair", 63: "couch", 64: "potted plant", 67: "dining table", 72: "tv"}


def colour(k):
    return (int(k * 53 % 256), int(k * 97 % 256), int(k * 151 % 256))


def polygon(w, h):
    """A random convex-ish polygon inside the image: points around a centre."""
    cx, cy = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
    r = rng.uniform(0.1, 0.3) * min(w, h)
    n = int(rng.integers(3, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    pts = [(float(np.clip(cx + r * np.cos(a), 0, w)), float(np.clip(cy + r * np.sin(a), 0, h))) for a in angles]
    return [round(c, 2) for p in pts for c in p]


def coco(split, n):
    folder = os.path.join(out, "coco", split)
    os.makedirs(folder, exist_ok=True)
    images, annotations = [], []
    for i in range(n):
        w, h = int(rng.integers(96, 160)), int(rng.integers(72, 120))
        img = Image.fromarray(rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(img)
        for k in range(int(rng.integers(1, 4))):
            cat = int(rng.choice([c for c in NAMES]))
            poly = polygon(w, h)
            draw.polygon(poly, fill=colour(VOC_IDS.index(cat)) if cat in VOC_IDS else (128, 128, 128))
            xs, ys = poly[0::2], poly[1::2]
            area = 0.5 * abs(sum(xs[j] * ys[j - 1] - xs[j - 1] * ys[j] for j in range(len(xs))))
            annotations.append({"id": len(annotations) + 1, "image_id": 1000 + i, "category_id": cat, "iscrowd": 0,
                                "segmentation": [poly], "area": round(area, 2),
                                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]})
        if i % 2 == 0:
            # A crowd of people as uncompressed RLE (column-major runs): a band at the bottom.
            y0 = int(0.8 * h)
            counts, last = [], 0
            for x in range(w // 4, w // 2):
                counts += [x * h + y0 - last, h - y0]
                last = x * h + h
            counts.append(w * h - last)
            draw.rectangle([w // 4, y0, w // 2 - 1, h - 1], fill=colour(15))
            annotations.append({"id": len(annotations) + 1, "image_id": 1000 + i, "category_id": 1, "iscrowd": 1,
                                "segmentation": {"counts": counts, "size": [h, w]},
                                "area": float((w // 2 - w // 4) * (h - y0)),
                                "bbox": [w // 4, y0, w // 4, h - y0]})
        name = f"{1000 + i:012d}.jpg"
        img.save(os.path.join(folder, name), quality=95)
        images.append({"id": 1000 + i, "file_name": name, "width": w, "height": h})
    os.makedirs(os.path.join(out, "coco", "annotations"), exist_ok=True)
    categories = [{"id": c, "name": NAMES[c], "supercategory": "x"} for c in sorted(NAMES)]
    with open(os.path.join(out, "coco", "annotations", f"instances_{split}.json"), "w") as fh:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, fh)


def voc(n_train, n_val):
    root = os.path.join(out, "voc", "VOC2012")
    for d in ["JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"]:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    palette = [0, 0, 0] * 256
    for k in range(21):
        palette[3 * k:3 * k + 3] = colour(k)
    palette[765:768] = [224, 224, 192]
    ids = {"train_aug": [], "val": []}
    for split, n in [("train_aug", n_train), ("val", n_val)]:
        for i in range(n):
            key = f"2008_{len(ids['train_aug']) + len(ids['val']):06d}"
            w, h = int(rng.integers(96, 160)), int(rng.integers(72, 120))
            img = Image.fromarray(rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8))
            mask = Image.new("L", (w, h), 0)
            for k in range(int(rng.integers(1, 4))):
                cls = int(rng.integers(1, 21))
                poly = polygon(w, h)
                ImageDraw.Draw(img).polygon(poly, fill=colour(cls))
                ImageDraw.Draw(mask).polygon(poly, fill=cls, outline=255)
            img.save(os.path.join(root, "JPEGImages", key + ".jpg"), quality=95)
            if split == "val":
                m = mask.convert("P")
                m.putpalette(palette)
                m.save(os.path.join(root, "SegmentationClass", key + ".png"))
            else:
                mask.save(os.path.join(root, "SegmentationClassAug", key + ".png"))
            ids[split].append(key)
    for split, keys in ids.items():
        with open(os.path.join(root, "ImageSets", "Segmentation", split + ".txt"), "w") as fh:
            fh.write("".join(k + "\n" for k in keys))


def kinetics(split, per_class):
    for c, cls in enumerate(["abseiling", "bowling", "juggling balls"]):
        folder = os.path.join(out, "kinetics", split, cls)
        os.makedirs(folder, exist_ok=True)
        for v in range(per_class):
            path = os.path.join(folder, f"{cls[:3]}{v:03d}.mp4")
            p = subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                                  "-s", "160x120", "-r", "30", "-i", "pipe:0", "-c:v", "libx264",
                                  "-pix_fmt", "yuv420p", path], stdin=subprocess.PIPE)
            base = rng.integers(0, 80, size=(120, 160, 3))
            yy, xx = np.mgrid[0:120, 0:160]
            for t in range(90):
                f = base.copy()
                # A square of the class's colour moving across the frame.
                x0 = int((t * (2 + c) + 13 * v) % 130)
                f[40:80, x0:x0 + 30] = colour(5 * c + 3)
                f[(yy + t * (c + 1)) % 17 == 0] += 40
                p.stdin.write(np.clip(f, 0, 255).astype(np.uint8).tobytes())
            p.stdin.close()
            assert p.wait() == 0, path


coco("val2017", 4)
coco("train2017", 6)
voc(6, 4)
kinetics("train", 2)
kinetics("val", 2)
print(f"wrote {out}: coco (train2017, val2017), voc (VOC2012 train_aug, val), kinetics (train, val)")
