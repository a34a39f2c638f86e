"""Whether MuJoCo can render offscreen here (``--video`` needs it), checked before a run."""

from __future__ import annotations

import warnings

_PROBE_MODEL = "<mujoco><worldbody><geom type='sphere' size='0.1'/></worldbody></mujoco>"


def offscreen_rendering_problem() -> str | None:
    """Why MuJoCo cannot render offscreen in this process, or None when it can.

    Renders one 16x16 frame of a one-sphere model with the GL back end ``MUJOCO_GL`` selects
    (``osmesa`` needs Debian's ``libosmesa6`` and ``PYOPENGL_PLATFORM=osmesa``; ``egl`` a GPU
    driver; the default ``glfw`` a display). Warnings of the failing back end are silenced: the
    caller reports the returned reason once.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mujoco

            model = mujoco.MjModel.from_xml_string(_PROBE_MODEL)
            data = mujoco.MjData(model)
            renderer = mujoco.Renderer(model, 16, 16)
            try:
                renderer.update_scene(data)
                renderer.render()
            finally:
                renderer.close()
    except Exception as error:  # each GL back end fails its own way: report, do not crash
        return f"{type(error).__name__}: {error}"
    return None
