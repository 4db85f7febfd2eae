//! The raw side of [`super`]: the `#[no_mangle]` definitions of the libudev
//! symbols, each forwarding to the function of the same name in
//! `libudev.so.1` (dlopen'd and resolved with dlsym on the first call), and
//! the errno they set when it cannot be loaded.
//!
//! Contract: as [`super`]'s. Every `unsafe` block of the lazy libudev is here,
//! each with its `// SAFETY:` reason.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

const LIBRARY: &CStr = c"libudev.so.1";

// Every `unsafe` block below carries its SAFETY comment; the lint reaches
// into the macro's expansion too.
macro_rules! libudev {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty, or $fail:expr;)*) => {
        /// The resolved functions of the loaded library.
        struct Lib {
            $($name: unsafe extern "C" fn($($ty),*) -> $ret,)*
        }

        /// Resolves every function in `handle`, or names the first missing one.
        fn resolve(handle: *mut c_void) -> Result<Lib, String> {
            Ok(Lib {
                $($name: {
                    let name = concat!(stringify!($name), "\0");
                    // SAFETY: handle came from a successful dlopen and is
                    // never closed; name is NUL-terminated.
                    let f = unsafe { libc::dlsym(handle, name.as_ptr().cast()) };
                    if f.is_null() {
                        return Err(format!("{} has no {}", LIBRARY.to_string_lossy(),
                                           stringify!($name)));
                    }
                    // SAFETY: f is the address of the libudev function of this
                    // name, whose C signature (libudev.h) is the one declared.
                    unsafe {
                        std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($ty),*) -> $ret>(f)
                    }
                },)*
            })
        }

        $(
            /// Forwards to the libudev function of the same name.
            ///
            /// # Safety
            /// As for the libudev function (libudev.h): the pointers must be
            /// ones libudev handed out, or valid C strings where it takes them.
            #[no_mangle]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
                match lib() {
                    // SAFETY: the caller upholds libudev's contract for this
                    // function, which is what f is.
                    Some(l) => unsafe { (l.$name)($($arg),*) },
                    None => {
                        set_errno(libc::ELIBACC);
                        $fail
                    }
                }
            }
        )*
    };
}

type Ptr = *mut c_void;
type Str = *const c_char;
const NULL: Ptr = std::ptr::null_mut();

libudev! {
    fn udev_new() -> Ptr, or NULL;
    fn udev_ref(udev: Ptr) -> Ptr, or NULL;
    fn udev_unref(udev: Ptr) -> Ptr, or NULL;
    fn udev_device_new_from_syspath(udev: Ptr, syspath: Str) -> Ptr, or NULL;
    fn udev_device_new_from_subsystem_sysname(udev: Ptr, subsystem: Str, sysname: Str) -> Ptr,
        or NULL;
    fn udev_device_ref(device: Ptr) -> Ptr, or NULL;
    fn udev_device_unref(device: Ptr) -> Ptr, or NULL;
    fn udev_device_get_parent(device: Ptr) -> Ptr, or NULL;
    fn udev_device_get_syspath(device: Ptr) -> Str, or std::ptr::null();
    fn udev_device_get_sysname(device: Ptr) -> Str, or std::ptr::null();
    fn udev_device_get_subsystem(device: Ptr) -> Str, or std::ptr::null();
    fn udev_device_get_driver(device: Ptr) -> Str, or std::ptr::null();
    fn udev_device_get_devnode(device: Ptr) -> Str, or std::ptr::null();
    fn udev_device_get_devnum(device: Ptr) -> libc::dev_t, or 0;
    fn udev_enumerate_new(udev: Ptr) -> Ptr, or NULL;
    fn udev_enumerate_unref(enumerate: Ptr) -> Ptr, or NULL;
    fn udev_enumerate_add_match_subsystem(enumerate: Ptr, subsystem: Str) -> c_int,
        or -libc::ELIBACC;
    fn udev_enumerate_add_match_sysname(enumerate: Ptr, sysname: Str) -> c_int,
        or -libc::ELIBACC;
    fn udev_enumerate_scan_devices(enumerate: Ptr) -> c_int, or -libc::ELIBACC;
    fn udev_enumerate_get_list_entry(enumerate: Ptr) -> Ptr, or NULL;
    fn udev_list_entry_get_next(entry: Ptr) -> Ptr, or NULL;
    fn udev_list_entry_get_name(entry: Ptr) -> Str, or std::ptr::null();
}

static LIB: OnceLock<Option<Lib>> = OnceLock::new();

fn lib() -> Option<&'static Lib> {
    LIB.get_or_init(|| match load() {
        Ok(lib) => Some(lib),
        Err(e) => {
            log::error!("cannot load {}: {e}", LIBRARY.to_string_lossy());
            None
        }
    })
    .as_ref()
}

fn load() -> Result<Lib, String> {
    // SAFETY: a NUL-terminated name; libudev's initialisers have no
    // preconditions. The handle is kept for the life of the process.
    let handle = unsafe { libc::dlopen(LIBRARY.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(dlerror());
    }
    resolve(handle)
}

fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message valid until the
    // next dl* call on this thread, copied at once.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        "unknown dlopen error".into()
    } else {
        // SAFETY: non-NULL, NUL-terminated (above).
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    }
}

fn set_errno(value: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = value };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_to_the_real_library() {
        // Built against libudev-dev, so libudev.so.1 is there.
        assert!(lib().is_some());
        // SAFETY: the libudev calls in their documented order.
        unsafe {
            let udev = udev_new();
            assert!(!udev.is_null());
            let dev = udev_device_new_from_syspath(udev, c"/sys/class/mem/null".as_ptr());
            if !dev.is_null() {
                let name = CStr::from_ptr(udev_device_get_sysname(dev));
                assert_eq!(name.to_str().unwrap(), "null");
                assert_eq!(udev_device_get_devnum(dev), libc::makedev(1, 3));
                udev_device_unref(dev);
            }
            udev_unref(udev);
        }
    }
}
