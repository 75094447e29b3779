"""The embedded demo benchmark: a small Oxford-layout retrieval benchmark generated offline from
real photographs that ship inside installed packages.

Why it exists: `python evaluate.py` must run on a fresh machine with no download, and the
standard benchmarks (Oxford, Paris, Holidays, UKB) cannot ship with the code. The photos of
scikit-image, scikit-learn, matplotlib and (where installed) Debian's opencv-doc can; from them
this package writes a benchmark that the Oxford reader and protocol score unchanged.

One module per step, each importing only the ones before it:

- `sources`: which photos, and how they are loaded and stamped;
- `params`: `DemoParams`, every setting besides the seed that changes the files;
- `regions`: photos cut into disjoint regions (the instances) and split into test, distractor
  and train regions;
- `render`: one generated view of a region (viewpoint, occlusion, lighting, noise);
- `build`: the benchmark written in the Oxford layout, an artifact of `ncl.cache`, and the
  `demo_benchmark` reader that `benchmark=demo` names;
- `layout`: `DemoLayout`, the training split as a training-data layout (`data=demo`); not
  imported here, as it brings in the training stack;
- `__main__`: `python -m ncl.demo ROOT`.

The demo sits above `ncl.data.benchmarks`, `ncl.io` and `ncl.cache`; nothing below imports it.
"""

from ncl.demo.build import (
    GENERATOR_VERSION,
    MANIFEST,
    DemoInfo,
    build_demo,
    demo_benchmark,
    relevance,
)
from ncl.demo.params import DemoParams
from ncl.demo.render import render_view
from ncl.demo.sources import (
    OPENCV_DIR_ENV,
    OPENCV_DOC_DIR,
    Source,
    default_sources,
    opencv_doc_dir,
)

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST",
    "OPENCV_DIR_ENV",
    "OPENCV_DOC_DIR",
    "DemoInfo",
    "DemoParams",
    "Source",
    "build_demo",
    "default_sources",
    "demo_benchmark",
    "opencv_doc_dir",
    "relevance",
    "render_view",
]
