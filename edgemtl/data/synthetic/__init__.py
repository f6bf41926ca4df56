"""Procedural multi-task scenes: a small numpy ray caster.

Why: tests, recipes and CI need a dataset that appears from nothing, is exactly
reproducible, and has *consistent* labels for every task (seg, depth, normal,
keypoints, edges) so that a tiny CNN learns something real in minutes on a CPU.

The scene is an open-top room seen by a pinhole camera looking slightly down:
a checkered floor, 2-3 striped walls, and 2-6 objects (red-family spheres,
blue-family framed boxes, green-family banded cylinders) standing on the floor
without touching. Every pixel's ray is intersected with every primitive at once
(vectorised over pixels), so a 64x128 image costs a few milliseconds.

Conventions (also in docs/formats.md):
- Camera frame is OpenCV's: x right, y down, z forward. Pixel (row i, column j)
  has its centre at image coordinates (u, v) = (j, i); the principal point is
  ((W-1)/2, (H-1)/2); fx = fy = (W/2) / tan(hfov/2).
- depth is **z-depth** (camera-frame z) in metres, 0 where the ray hits nothing.
- normal is a unit vector in the camera frame facing the camera, (0,0,0) where
  the ray hits nothing. seg is -1 there. keypoints and edges are defined
  everywhere (0 where there is nothing).
- The world frame is X right, Y forward (into the room), Z up; the floor is Z=0.
- Sample i of split s is rendered from `np.random.default_rng([seed, s_id, i])`,
  so any index is regenerated alone and in any order.

Modules: `params` (SynthParams, labels, splits), `scene` (camera, shapes, room),
`sampling` (random scenes), `raycast` (intersections, normals, albedo),
`targets` (edges, keypoints), `render` (a scene or sample i -> Sample),
`cache` (dataset files, ensure_dataset). Everything public is re-exported here.
"""

from edgemtl.data.synthetic.cache import (
    LAYOUT_FOLDERS,
    cache_root,
    dataset_key,
    ensure_dataset,
    write_dataset,
)
from edgemtl.data.synthetic.params import (
    BOX,
    CLASS_NAMES,
    CYLINDER,
    FLOOR,
    GENERATOR_VERSION,
    HFOV_DEG,
    SPHERE,
    SPLITS,
    WALL,
    SynthParams,
)
from edgemtl.data.synthetic.render import render_sample, render_scene
from edgemtl.data.synthetic.sampling import sample_scene
from edgemtl.data.synthetic.scene import (
    Box,
    Camera,
    Cylinder,
    Light,
    Room,
    Scene,
    Shape,
    Sphere,
    Vec3,
)
from edgemtl.data.synthetic.targets import (
    EDGE_DEPTH_REL,
    EDGE_NORMAL_DEG,
    EDGE_SOFTNESS_PX,
    KEYPOINT_SIGMA_PX,
)

__all__ = [
    "BOX",
    "CLASS_NAMES",
    "CYLINDER",
    "EDGE_DEPTH_REL",
    "EDGE_NORMAL_DEG",
    "EDGE_SOFTNESS_PX",
    "FLOOR",
    "GENERATOR_VERSION",
    "HFOV_DEG",
    "KEYPOINT_SIGMA_PX",
    "LAYOUT_FOLDERS",
    "SPHERE",
    "SPLITS",
    "WALL",
    "Box",
    "Camera",
    "Cylinder",
    "Light",
    "Room",
    "Scene",
    "Shape",
    "Sphere",
    "SynthParams",
    "Vec3",
    "cache_root",
    "dataset_key",
    "ensure_dataset",
    "render_sample",
    "render_scene",
    "sample_scene",
    "write_dataset",
]
