"""A PEP 517 build backend in the source tree, with no dependencies of its own.

`pip install ./bindings/python` builds in an isolated environment and would otherwise download
setuptools first; this backend needs nothing, so the install works without a network. The wheel
is pure Python: the package files plus the metadata of pyproject.toml.
"""
import base64
import hashlib
import os
import zipfile

NAME = "fathom_bridge"
DIST = "fathom_bridge"
VERSION = "0.1.0"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

METADATA = f"""Metadata-Version: 2.1
Name: fathom-bridge
Version: {VERSION}
Summary: Python binding of fathom-bridge (connects a CRM to Fathom) over its C ABI, with ctypes
Requires-Python: >=3.9
"""
WHEEL = """Wheel-Version: 1.0
Generator: fathom-bridge fb_backend
Root-Is-Purelib: true
Tag: py3-none-any
"""


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _write_wheel(wheel_directory, files):
    wheel_name = f"{DIST}-{VERSION}-py3-none-any.whl"
    info = f"{DIST}-{VERSION}.dist-info"
    files = list(files) + [(f"{info}/METADATA", METADATA.encode()), (f"{info}/WHEEL", WHEEL.encode())]
    record = [_record_line(name, data) for name, data in files] + [f"{info}/RECORD,,"]
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel_name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = []
    pkg = os.path.join(HERE, NAME)
    for name in sorted(os.listdir(pkg)):
        if name.endswith(".py"):
            with open(os.path.join(pkg, name), "rb") as f:
                files.append((f"{NAME}/{name}", f.read()))
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth file that puts the source tree on sys.path.
    return _write_wheel(wheel_directory, [(f"{DIST}.pth", (HERE + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    import tarfile
    base = f"{DIST}-{VERSION}"
    path = os.path.join(sdist_directory, base + ".tar.gz")
    with tarfile.open(path, "w:gz") as t:
        for rel in ["pyproject.toml", "README.md", "_build/fb_backend.py"] + [
                f"{NAME}/{n}" for n in sorted(os.listdir(os.path.join(HERE, NAME))) if n.endswith(".py")]:
            full = os.path.join(HERE, rel)
            if os.path.exists(full):
                t.add(full, arcname=f"{base}/{rel}")
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        data = METADATA.encode()
        info.size = len(data)
        import io
        t.addfile(info, io.BytesIO(data))
    return os.path.basename(path)
