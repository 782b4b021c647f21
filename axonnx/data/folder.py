"""Your own data on disk, as a :class:`~axonnx.data.source.Dataset` for a model.

* **Images** (.png, .jpg, .jpeg, .bmp, .webp), of any size: read as RGB (or gray), resized
  and centre-cropped as the :class:`~axonnx.data.preprocess.Preprocess` says (or straight
  to the model's fixed input size), kept as uint8 and preprocessed per batch. Laid out as
  an **ImageFolder** (one sub-folder per class, classes sorted by name, as torchvision's
  ``find_classes``) they are labelled by their folder.
* **Arrays** (.npy, .npz, or a folder of them): fed as they are; an .npz may hold one array
  per model input (by name) and a ``labels`` array.
* **Labels** from a file (``--labels``): a text/CSV file with ``file,label`` lines (label an
  index or a class name), or one label per line in file-name order; or an .npy of ints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from axonnx.data.preprocess import Preprocess
from axonnx.data.source import Dataset
from axonnx.errors import AxonnxError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
ARRAY_SUFFIXES = (".npy", ".npz")


def find_classes(root: Path) -> tuple[list[str], dict[str, int]]:
    """Class folders of an ImageFolder layout, sorted, and their indices ([] when the
    images are not laid out by class)."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose or not classes:
        return [], {}
    return classes, {c: i for i, c in enumerate(classes)}


def data_files(path: Path, what: str = "data") -> list[Path]:
    """The image or array files at ``path`` (a file or a folder, searched recursively), in
    name order; one kind only."""
    if not path.exists():
        raise AxonnxError(f"{what} {path} does not exist")
    if path.is_file():
        if path.suffix.lower() not in ARRAY_SUFFIXES + IMAGE_SUFFIXES:
            raise AxonnxError(f"{what} {path}: give a folder of images or arrays, or an .npy "
                              "or .npz file")
        return [path]
    files = sorted(p for p in path.rglob("*")
                   if p.is_file() and p.suffix.lower() in ARRAY_SUFFIXES + IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise AxonnxError(f"{what} {path} holds no {', '.join(IMAGE_SUFFIXES + ARRAY_SUFFIXES)} "
                          "files")
    if len({p.suffix.lower() in IMAGE_SUFFIXES for p in files}) > 1:
        raise AxonnxError(f"{what} {path} mixes images and arrays; use one kind")
    return files


# ---- labels ----------------------------------------------------------------------------------

def read_labels(path: Path, files: list[Path], root: Path, classes: list[str] | None) -> np.ndarray:
    """One int label per file, from ``path`` (see the module docstring)."""
    if not path.is_file():
        raise AxonnxError(f"labels file {path} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            labels = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise AxonnxError(f"cannot read labels {path}: {exc}") from None
        return _int_labels(labels, path)
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    pairs = [ln.replace(",", " ").replace("\t", " ").split() for ln in lines]
    index = {c: i for i, c in enumerate(classes or [])}

    def label(text: str, where: str) -> int:
        if text.lstrip("-").isdigit():
            return int(text)
        if text in index:
            return index[text]
        raise AxonnxError(f"labels file {path}: {where} has label {text!r}, neither an index "
                          "nor a class name" + (f" ({', '.join(index)})" if index else ""))

    if pairs and all(len(p) >= 2 for p in pairs):
        by_name = {}
        for p in pairs:
            by_name[p[0]] = label(p[-1], p[0])
        out = []
        for f in files:
            key = next((k for k in (str(f.relative_to(root)), f.name, f.stem) if k in by_name), None)
            if key is None:
                raise AxonnxError(f"labels file {path} has no line for {f.name}; give one "
                                  "'file,label' line per file")
            out.append(by_name[key])
        return np.asarray(out, np.int64)
    if len(lines) != len(files):
        raise AxonnxError(f"labels file {path} has {len(lines)} labels for {len(files)} files; "
                          "give one per file (in file-name order) or 'file,label' lines")
    return np.asarray([label(ln, f"line {k + 1}") for k, ln in enumerate(lines)], np.int64)


def _int_labels(labels: np.ndarray, where) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise AxonnxError(f"labels in {where} must be a 1-D integer array, not {labels.dtype} "
                          f"{list(labels.shape)}")
    return labels.astype(np.int64)


# ---- images ----------------------------------------------------------------------------------

def image_size(spec, prep: Preprocess) -> tuple[int | None, int | None]:
    """The (height, width) the model's input fixes (None where dynamic)."""
    if spec.dims is None or len(spec.dims) != 4:
        raise AxonnxError(f"images need a 4-D image input; the model's input {spec.name!r} is "
                          f"{spec.describe()}: give .npy/.npz arrays instead")
    h_axis = 2 if prep.layout == "NCHW" else 1
    return spec.dims[h_axis], spec.dims[h_axis + 1]


def _resized(img, prep: Preprocess, want: tuple[int | None, int | None]):
    from PIL import Image

    if prep.resize is not None:
        if len(prep.resize) == 1:
            s = prep.resize[0]
            w, h = img.size
            scale = s / min(w, h)
            img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                             Image.Resampling.BILINEAR)
        else:
            img = img.resize((prep.resize[1], prep.resize[0]), Image.Resampling.BILINEAR)
    if prep.crop is not None:
        ch, cw = prep.crop
        w, h = img.size
        if ch > h or cw > w:
            raise AxonnxError(f"crop {ch}x{cw} is larger than the resized image {h}x{w}; "
                              "resize first (resize=S) or crop less")
        top, left = (h - ch) // 2, (w - cw) // 2
        img = img.crop((left, top, left + cw, top + ch))
    if prep.resize is None and prep.crop is None and None not in want:
        if img.size != (want[1], want[0]):
            img = img.resize((want[1], want[0]), Image.Resampling.BILINEAR)
    return img


def read_images(files: list[Path], spec, prep: Preprocess) -> np.ndarray:
    """uint8 NCHW images for ``spec``, resized as ``prep`` says."""
    from PIL import Image

    want = image_size(spec, prep)
    channels = spec.dims[1] if prep.layout == "NCHW" else spec.dims[3]
    if channels is not None and channels != prep.channel_count:
        if channels == 1:
            prep_mode = "L"
        elif channels == 3:
            prep_mode = "RGB"
        else:
            raise AxonnxError(f"images have 1 or 3 channels; the model input {spec.name!r} has "
                              f"{channels}: give .npy/.npz arrays instead")
    else:
        prep_mode = "L" if prep.channels == "L" else "RGB"
    pixels = []
    for f in files:
        try:
            with Image.open(f) as img:
                img = _resized(img.convert(prep_mode), prep, want)
                hwc = np.asarray(img, dtype=np.uint8)
        except OSError as exc:
            raise AxonnxError(f"cannot read image {f}: {exc}") from None
        hwc = hwc[..., None] if hwc.ndim == 2 else hwc
        if pixels and hwc.shape != pixels[0].shape:
            raise AxonnxError(f"image {f.name} is {hwc.shape[0]}x{hwc.shape[1]}, the first one "
                              f"{pixels[0].shape[0]}x{pixels[0].shape[1]}, and the model's input "
                              f"{spec.describe()} fixes no size: give --preprocess resize=HxW")
        pixels.append(hwc)
    images = np.stack(pixels).transpose(0, 3, 1, 2)
    h, w = images.shape[2:]
    if any(d is not None and d != s for d, s in zip(want, (h, w))):
        raise AxonnxError(f"the preprocessed images are {h}x{w} but the model input "
                          f"{spec.name!r} is {spec.describe()}: change --preprocess resize/crop")
    return np.ascontiguousarray(images)


# ---- arrays ----------------------------------------------------------------------------------

def read_arrays(files: list[Path], specs, fit) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Arrays for the model's inputs (``fit(array, spec, where)`` checks each) and the
    labels any .npz carries."""
    names = [s.name for s in specs]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    labels: list[np.ndarray] = []
    for f in files:
        try:
            if f.suffix.lower() == ".npy":
                if len(specs) != 1:
                    raise AxonnxError(f"{f.name}: a model with {len(specs)} inputs needs .npz "
                                      f"files with one array per input ({', '.join(names)})")
                parts[names[0]].append(fit(np.load(f, allow_pickle=False), specs[0], f.name))
                continue
            with np.load(f, allow_pickle=False) as data:
                keys = [k for k in data.files if k != "labels"]
                if "labels" in data.files:
                    labels.append(_int_labels(data["labels"], f.name))
                if all(n in keys for n in names):
                    for spec in specs:
                        parts[spec.name].append(fit(data[spec.name], spec, f"{f.name}[{spec.name}]"))
                elif len(specs) == 1:
                    for key in keys:
                        parts[names[0]].append(fit(data[key], specs[0], f"{f.name}[{key}]"))
                else:
                    raise AxonnxError(f"{f.name} holds {', '.join(keys)}; the model's inputs are "
                                      f"{', '.join(names)}: name the arrays after them")
        except (OSError, ValueError) as exc:
            raise AxonnxError(f"cannot read {f}: {exc}") from None
    for name, p in parts.items():
        shapes = {a.shape[1:] for a in p}
        if len(shapes) > 1:
            raise AxonnxError(f"the arrays for input {name!r} in {files[0].parent} have different "
                              f"sample shapes {sorted(shapes)}; give samples of one shape")
    arrays = {n: np.concatenate(p) for n, p in parts.items() if p}
    if len(arrays) != len(names):
        raise AxonnxError(f"the arrays in {files[0].parent} hold no samples")
    label_array = np.concatenate(labels) if labels else None
    return arrays, label_array
