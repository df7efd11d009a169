"""render_scene writes a PNG of the requested size showing the fab."""

from __future__ import annotations

import numpy as np
import pytest

from tests.physics.scenes import loop_scene
from twin.errors import InputError
from twin.physics.render import default_camera, render_scene
from twin.scene.graph import Node, translation

pytest.importorskip("pybullet")


def scene_with_tools():
    scene = loop_scene(vehicles=4)
    for k in range(6):
        scene.add(
            Node(
                id=f"T{k}",
                kind="tool",
                family=f"fam{k % 3}",
                transform=translation(4.0 + 2.5 * k, 10.0),
                size=(1.5, 2.0, 2.0),
            )
        )
    return scene


def test_render_writes_png_of_the_requested_size(tmp_path):
    """The PNG has the requested size and shows more than the background (tools and rails)."""
    from PIL import Image

    out = render_scene(scene_with_tools(), tmp_path / "fab.png", width=320, height=200)
    image = np.asarray(Image.open(out))
    assert image.shape[:2] == (200, 320)
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 20


def test_states_change_the_picture(tmp_path):
    """Colouring tools by E10 state gives a different image than colouring by family."""
    from PIL import Image

    scene = scene_with_tools()
    a = render_scene(scene, tmp_path / "a.png", width=200, height=120)
    b = render_scene(
        scene,
        tmp_path / "b.png",
        width=200,
        height=120,
        states={f"T{k}": "unscheduled_down" for k in range(6)},
    )
    assert not np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_default_camera_frames_the_scene():
    """The default camera looks at the centre of the fab from above and outside it."""
    scene = scene_with_tools()
    eye, target = default_camera(scene, 1280, 720)
    box = scene.scene_bbox()
    assert np.allclose(target[:2], (box[0][:2] + box[1][:2]) / 2)
    assert eye[2] > box[1][2]


def test_bad_render_arguments(tmp_path):
    """A non-PNG path, a missing folder or an unknown state are clear errors."""
    scene = scene_with_tools()
    with pytest.raises(InputError):
        render_scene(scene, tmp_path / "fab.jpg")
    with pytest.raises(InputError):
        render_scene(scene, tmp_path / "missing" / "fab.png")
    with pytest.raises(InputError):
        render_scene(scene, tmp_path / "fab.png", states={"T0": "sleepy"})
    with pytest.raises(InputError):
        render_scene(scene, tmp_path / "fab.png", camera=(0, 0, float("nan")))
