#!/usr/bin/env bash
# One-command, idempotent set-up of pose_classifier_ros on a fresh Debian 12 / Python 3.11 machine.
#
#   scripts/setup.sh            # creates .venv, installs everything, builds the interfaces
#
# Variables:
#   VENV            where the virtual environment goes            (default: <repo>/.venv)
#   ROS_EXTRAS_DIR  upstream launch/ros2cli wheels + vision_msgs   (default: <repo>/../shared/ros-extras)
#   PYTHON          interpreter used to create the venv            (default: python3.11 or python3)
#   JOBS            parallel build jobs                            (default: nproc)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
ROS_EXTRAS_DIR="${ROS_EXTRAS_DIR:-$REPO/../shared/ros-extras}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
JOBS="${JOBS:-$(nproc)}"
BUILD="$REPO/build"
STEP="(none)"

mkdir -p "$BUILD"
# Concurrent runs (parallel shells, CI steps) would share build/: serialise them.
exec 9>"$BUILD/.setup.lock"
flock 9

step() { STEP="$1"; printf '\n==> [setup] %s\n' "$1"; }
trap 'rc=$?; if [ $rc -ne 0 ]; then printf "\n[setup] FAILED at step: %s (exit %s)\n" "$STEP" "$rc" >&2; fi' EXIT

# Registries here serve local mirrors that pip warns about noisily; keep output readable.
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither" || true; return "${PIPESTATUS[0]}"; }

step "virtual environment at $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 10), sys.version' \
  || { echo "Python >= 3.10 is required" >&2; exit 1; }

step "PyTorch (torch==2.14.1, torchvision==0.29.1)"
if ! "$PY" -c 'import torch, torchvision; assert torch.__version__.startswith("2.14.1") and torchvision.__version__.startswith("0.29.1")' 2>/dev/null; then
  pip_install torch==2.14.1 torchvision==0.29.1
fi

step "ROS 2 Kilted wheels and Python dependencies (requirements.txt)"
REQ_STAMP="$VENV/.pose_classifier_requirements.sha"
REQ_SHA="$(sha256sum "$REPO/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$REQ_STAMP" 2>/dev/null)" != "$REQ_SHA" ]; then
  pip_install -r "$REPO/requirements.txt"
  echo "$REQ_SHA" > "$REQ_STAMP"
fi

step "launch, launch_ros, ros2cli from $ROS_EXTRAS_DIR"
if [ ! -d "$ROS_EXTRAS_DIR/wheels" ] || [ ! -d "$ROS_EXTRAS_DIR/interfaces/vision_msgs" ]; then
  echo "ROS extras not found at $ROS_EXTRAS_DIR." >&2
  echo "Set ROS_EXTRAS_DIR to a folder holding wheels/ (launch, launch_ros, ros2cli) and interfaces/vision_msgs," >&2
  echo "or build this package with colcon inside a full ROS 2 Kilted install instead (see README)." >&2
  exit 1
fi
if ! "$PY" -c 'import launch, launch_ros, ros2cli, ros2launch, ros2lifecycle' 2>/dev/null; then
  # --no-deps: launch_ros names ament_index_python, which PyPI ships as ros-ament-index-python.
  pip_install --no-deps "$ROS_EXTRAS_DIR"/wheels/*.whl
fi

step "point the ROS wheels' CMake exports at this venv's Python headers"
PY_INCLUDE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NP_INCLUDE="$("$PY" -c 'import numpy; print(numpy.get_include())')"
{ grep -rlZ --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null || true; } \
  | xargs -0 -r sed -i \
      -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INCLUDE#g" \
      -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INCLUDE#g"

export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
cmake_install() {  # cmake_install NAME SOURCE_DIR [extra cmake args...]
  local name="$1" src="$2"; shift 2
  cmake -S "$src" -B "$BUILD/$name" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" \
        -DBUILD_TESTING=OFF "$@" > "$BUILD/$name.configure.log" 2>&1 \
    || { tail -40 "$BUILD/$name.configure.log" >&2; return 1; }
  cmake --build "$BUILD/$name" -j"$JOBS" > "$BUILD/$name.build.log" 2>&1 \
    || { grep -m20 -iE "error" "$BUILD/$name.build.log" >&2; tail -20 "$BUILD/$name.build.log" >&2; return 1; }
  # From inside the build dir: ament's symlink install writes its manifest to the current directory.
  (cd "$BUILD/$name" && cmake --install .) > "$BUILD/$name.install.log" 2>&1 \
    || { tail -20 "$BUILD/$name.install.log" >&2; return 1; }
}
mkdir -p "$BUILD"

for pkg in vision_msgs composition_interfaces; do
  step "interface package $pkg (upstream source from ros-extras)"
  if [ -f "$VENV/share/$pkg/package.xml" ] && "$PY" -c "import $pkg.msg" 2>/dev/null; then
    echo "already installed"
  else
    cmake_install "$pkg" "$ROS_EXTRAS_DIR/interfaces/$pkg"
  fi
done

# A symlink install (like `colcon build --symlink-install`) makes the Python sources editable in place.
# No `pip install -e .` on top: pip would treat the egg-info ament installs as its own and remove it.
step "pose_classifier_ros: msg/ interfaces, Python package, launch/config, executables"
cmake_install pose_classifier_ros "$REPO" -DAMENT_CMAKE_SYMLINK_INSTALL=ON

step "smoke check"
AMENT_PREFIX_PATH="$VENV" "$PY" - <<'PYEOF'
import importlib
for mod in ("torch", "torchvision", "rclpy", "rosbags", "vision_msgs.msg", "launch_ros",
            "pose_classifier_ros", "pose_classifier_ros.msg"):
    importlib.import_module(mod)
from pose_classifier_ros.msg import ViewpointArray  # noqa: F401
print("imports ok")
PYEOF
trap - EXIT
printf '\n[setup] done. Activate with: source %s/bin/activate && export AMENT_PREFIX_PATH=%s\n' "$VENV" "$VENV"
