"""The shared video writer (no GL needed: the frames are synthetic)."""

from __future__ import annotations

import numpy as np
import pytest

from diffuser_ros.rendering import VideoRecorder


def test_video_recorder_writes_a_looping_gif_at_about_30_fps(tmp_path):
    from PIL import Image

    path = tmp_path / "sub" / "run.gif"  # missing folders are created
    with VideoRecorder(path, rate=125.0) as video:
        assert video.every == 4 and video.fps == pytest.approx(31.25)
        for step in range(9):
            if video.due(step):
                video.add(np.full((8, 10, 3), 30 * step, dtype=np.uint8))
    assert video.frames == 3  # steps 0, 4, 8
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (10, 8)
        assert gif.info["loop"] == 0  # plays forever
        assert 20 <= gif.info["duration"] <= 40  # ms per frame, not the 100 ms default


def test_video_recorder_rejects_other_formats(tmp_path):
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        VideoRecorder(tmp_path / "run.avi", rate=125.0)
