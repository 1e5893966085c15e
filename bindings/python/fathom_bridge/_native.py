"""Loading libfathom_bridge.so and declaring the C ABI (fathom_bridge.h) for ctypes."""
import ctypes
import ctypes.util
import os
import subprocess

# char ** outputs are read as void pointers, so the string can be copied and then given back to
# fb_string_free (a c_char_p result would be copied by ctypes and the original leaked).
_P = ctypes.c_void_p
_OUT = ctypes.POINTER(ctypes.c_void_p)
_STR = ctypes.c_char_p
_INT = ctypes.c_int
_I64 = ctypes.c_int64

EVENT_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p)
CRM_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, _OUT, _OUT)

_SIGNATURES = {
    "fb_version": (_STR, []),
    "fb_code_name": (_STR, [_INT]),
    "fb_string_free": (None, [_P]),
    "fb_bridge_open": (_INT, [_STR, _STR, ctypes.POINTER(_P)]),
    "fb_bridge_close": (_INT, [_P]),
    "fb_errmsg": (_STR, [_P]),
    "fb_set_event_callback": (_INT, [_P, EVENT_FN, _P]),
    "fb_set_log_callback": (_INT, [_P, LOG_FN, _P]),
    "fb_register_crm_operation": (_INT, [_P, _STR, CRM_FN, _P]),
    "fb_connect_start": (_INT, [_P, _STR, _STR, _STR, _INT, _OUT]),
    "fb_connect_callback": (_INT, [_P, _STR, _OUT]),
    "fb_connect_callback_as": (_INT, [_P, _STR, _STR, _STR, _OUT]),
    "fb_connect_api_key": (_INT, [_P, _STR, _STR, _STR, ctypes.POINTER(_I64)]),
    "fb_disconnect": (_INT, [_P, _STR, _STR, _I64]),
    "fb_access_token": (_INT, [_P, _STR, _STR, _I64, _OUT]),
    "fb_token_health": (_INT, [_P, _STR, _STR, _OUT]),
    "fb_deactivate_expired": (_INT, [_P, _OUT]),
    "fb_sync": (_INT, [_P, _STR, _STR, _I64, _STR, _STR, _OUT]),
    "fb_tick": (_INT, [_P]),
    "fb_sync_start": (_INT, [_P, _STR, _STR, _I64, _STR, _STR, _OUT]),
    "fb_sync_job": (_INT, [_P, _STR, _STR, _I64, _OUT]),
    "fb_sync_cancel": (_INT, [_P, _STR, _STR, _I64]),
    "fb_sync_jobs": (_INT, [_P, _STR, _OUT]),
    "fb_webhook_receive": (_INT, [_P, _STR, ctypes.POINTER(_STR), ctypes.POINTER(_STR), ctypes.c_size_t,
                                  ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_INT), _OUT]),
    "fb_webhook_events": (_INT, [_P, _STR, _OUT]),
    "fb_webhook_replay": (_INT, [_P, _STR, ctypes.POINTER(_INT)]),
    "fb_scripts_reload": (_INT, [_P]),
    "fb_events_read": (_INT, [_P, _I64, _INT, _OUT]),
    "fb_events_wait": (_INT, [_P, _I64, _INT, _INT, _OUT]),
}


def _candidates(explicit):
    if explicit:
        yield explicit
    env = os.environ.get("FATHOM_BRIDGE_LIBRARY")
    if env:
        yield env
    try:  # an installed fathom-bridge that pkg-config knows
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "fathom-bridge"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        if libdir:
            yield os.path.join(libdir, "libfathom_bridge.so.0")
    except (OSError, subprocess.SubprocessError):
        pass
    yield "libfathom_bridge.so.0"  # the dynamic loader's own search (ld.so.cache, LD_LIBRARY_PATH)
    found = ctypes.util.find_library("fathom_bridge")
    if found:
        yield found


_lib = None


def load(path=None):
    """Loads the library once: `path`, $FATHOM_BRIDGE_LIBRARY, pkg-config's libdir, then the
    loader's search path. Raises OSError naming every place tried."""
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for candidate in _candidates(path):
        try:
            lib = ctypes.CDLL(candidate)
        except OSError as e:
            tried.append(f"{candidate}: {e}")
            continue
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        _lib = lib
        return lib
    raise OSError("libfathom_bridge.so.0 not found (set FATHOM_BRIDGE_LIBRARY to its path); tried:\n  " +
                  "\n  ".join(tried))


# The C library's allocator: CRM results handed to the bridge are freed there with free().
_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]


def c_strdup(text):
    """A malloc'd NUL-terminated copy of text (UTF-8), for the bridge to free()."""
    data = text.encode("utf-8")
    p = _libc.malloc(len(data) + 1)
    if not p:
        raise MemoryError("malloc failed")
    ctypes.memmove(p, data, len(data))
    ctypes.memset(p + len(data), 0, 1)
    return p
