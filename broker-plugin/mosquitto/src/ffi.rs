//! The Mosquitto 2.0 plugin ABI: the only module of the crate with `unsafe`.
//!
//! Everything here mirrors `mosquitto_broker.h`, `mosquitto_plugin.h` and `mosquitto.h` of the **2.0.x**
//! branch (checked against eclipse/mosquitto tag `v2.0.11` and Debian's 2.0.11-1.2+deb12u2 headers; the
//! event structs changed in 2.1, so re-check them before loading this plugin into a 2.1 broker). No header
//! or bindgen is needed to build: the broker functions stay undefined in the `.so` and resolve against the
//! `mosquitto` executable at `dlopen` time (it exports them with `-Wl,--dynamic-list=src/linker.syms`).
//!
//! The module does three things and nothing else:
//! - exports `mosquitto_plugin_version`, `mosquitto_plugin_init` and `mosquitto_plugin_cleanup`;
//! - turns each event struct into borrowed Rust values (`&str`, `&[u8]`), calls the safe handlers of
//!   [`crate::plugin`] under `catch_unwind` (a panic never unwinds into C: it becomes an error code), and
//!   writes their answer back;
//! - wraps the few broker calls the plugin makes (log, client id and username, `mosquitto_malloc`,
//!   `mosquitto_broker_publish_copy`, callback registration).
//!
//! Invariants relied on (from `src/plugin.c`, `src/security.c`, `src/handle_publish.c` of v2.0.11): every
//! callback runs on the broker's single main thread; the event pointer is valid, non-null and of the struct
//! type matching the event for the duration of the call; `userdata` is the pointer given at registration
//! (our `Box<Loaded>`), alive until `mosquitto_plugin_cleanup`, which unregisters every callback first.
#![allow(unsafe_code)]
// Under `cfg(test)` the entry points are compiled out (a test executable cannot leave the broker's symbols
// undefined), so the wrappers they use look dead.
#![cfg_attr(test, allow(dead_code, unused_imports))]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::marker::{PhantomData, PhantomPinned};

use crate::plugin::{AclAccess, AclAction, Client, Level, MessageAction};

// ---- mosquitto.h: return codes ----
pub(crate) const MOSQ_ERR_SUCCESS: c_int = 0;
pub(crate) const MOSQ_ERR_NOMEM: c_int = 1;
pub(crate) const MOSQ_ERR_INVAL: c_int = 3;
pub(crate) const MOSQ_ERR_AUTH: c_int = 11;
pub(crate) const MOSQ_ERR_ACL_DENIED: c_int = 12;
pub(crate) const MOSQ_ERR_UNKNOWN: c_int = 13;

// ---- mosquitto.h: log levels ----
const MOSQ_LOG_INFO: c_int = 1 << 0;
const MOSQ_LOG_NOTICE: c_int = 1 << 1;
const MOSQ_LOG_WARNING: c_int = 1 << 2;
const MOSQ_LOG_ERR: c_int = 1 << 3;
const MOSQ_LOG_DEBUG: c_int = 1 << 4;

// ---- mosquitto_plugin.h ----
const MOSQ_PLUGIN_VERSION: c_int = 5;
const MOSQ_ACL_READ: c_int = 0x01;
const MOSQ_ACL_WRITE: c_int = 0x02;
const MOSQ_ACL_SUBSCRIBE: c_int = 0x04;
const MOSQ_ACL_UNSUBSCRIBE: c_int = 0x08;

// ---- mosquitto_broker.h: enum mosquitto_plugin_event ----
const MOSQ_EVT_ACL_CHECK: c_int = 2;
const MOSQ_EVT_BASIC_AUTH: c_int = 3;
const MOSQ_EVT_MESSAGE: c_int = 7;
const MOSQ_EVT_DISCONNECT: c_int = 10;

/// `struct mosquitto`: opaque, only ever behind a pointer.
#[repr(C)]
pub(crate) struct Mosquitto {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `mosquitto_plugin_id_t`: opaque.
#[repr(C)]
pub(crate) struct PluginId {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `mosquitto_property` (`struct mqtt5__property`): opaque.
#[repr(C)]
pub(crate) struct Property {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `struct mosquitto_opt` (mosquitto_plugin.h).
#[repr(C)]
pub(crate) struct MosquittoOpt {
    key: *mut c_char,
    value: *mut c_char,
}

/// `struct mosquitto_evt_basic_auth` (2.0.x).
#[repr(C)]
pub(crate) struct EvtBasicAuth {
    future: *mut c_void,
    client: *mut Mosquitto,
    username: *mut c_char,
    password: *mut c_char,
    future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_acl_check` (2.0.x).
#[repr(C)]
pub(crate) struct EvtAclCheck {
    future: *mut c_void,
    client: *mut Mosquitto,
    topic: *const c_char,
    payload: *const c_void,
    properties: *mut Property,
    access: c_int,
    payloadlen: u32,
    qos: u8,
    retain: bool,
    future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_message` (2.0.x; 2.1 calls the event MOSQ_EVT_MESSAGE_IN).
#[repr(C)]
pub(crate) struct EvtMessage {
    future: *mut c_void,
    client: *mut Mosquitto,
    topic: *mut c_char,
    payload: *mut c_void,
    properties: *mut Property,
    reason_string: *mut c_char,
    payloadlen: u32,
    qos: u8,
    reason_code: u8,
    retain: bool,
    future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_disconnect` (2.0.x).
#[repr(C)]
pub(crate) struct EvtDisconnect {
    future: *mut c_void,
    client: *mut Mosquitto,
    reason: c_int,
    future2: [*mut c_void; 4],
}

/// `MOSQ_FUNC_generic_callback`.
type Callback = unsafe extern "C" fn(c_int, *mut c_void, *mut c_void) -> c_int;

extern "C" {
    fn mosquitto_callback_register(
        identifier: *mut PluginId,
        event: c_int,
        cb_func: Callback,
        event_data: *const c_void,
        userdata: *mut c_void,
    ) -> c_int;
    fn mosquitto_callback_unregister(
        identifier: *mut PluginId,
        event: c_int,
        cb_func: Callback,
        event_data: *const c_void,
    ) -> c_int;
    fn mosquitto_malloc(size: usize) -> *mut c_void;
    fn mosquitto_log_printf(level: c_int, fmt: *const c_char, ...);
    fn mosquitto_client_id(client: *const Mosquitto) -> *const c_char;
    fn mosquitto_client_username(client: *const Mosquitto) -> *const c_char;
    fn mosquitto_client_address(client: *const Mosquitto) -> *const c_char;
    fn mosquitto_broker_publish_copy(
        clientid: *const c_char,
        topic: *const c_char,
        payloadlen: c_int,
        payload: *const c_void,
        qos: c_int,
        retain: bool,
        properties: *mut Property,
    ) -> c_int;
}

/// Writes one line to the broker's log.
pub(crate) fn log(level: Level, message: &str) {
    let level = match level {
        Level::Debug => MOSQ_LOG_DEBUG,
        Level::Info => MOSQ_LOG_INFO,
        Level::Notice => MOSQ_LOG_NOTICE,
        Level::Warning => MOSQ_LOG_WARNING,
        Level::Error => MOSQ_LOG_ERR,
    };
    let line = CString::new(format!("smqtt: {message}").replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: `mosquitto_log_printf` is resolved from the broker; the format is a static NUL-terminated "%s"
    // with exactly one matching `const char *` argument, alive for the call.
    unsafe { mosquitto_log_printf(level, c"%s".as_ptr(), line.as_ptr()) };
}

/// A C string the broker owns, borrowed for the callback; `None` for NULL or non-UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a` and is not written meanwhile.
unsafe fn borrowed_str<'a>(ptr: *const c_char) -> Option<&'a str> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated, alive for 'a (the caller's contract).
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().ok()
}

/// The bytes of a C string the broker owns (passwords are binary; the broker NUL-terminates them).
///
/// # Safety
/// As for [`borrowed_str`].
unsafe fn borrowed_bytes<'a>(ptr: *const c_char) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated, alive for 'a (the caller's contract).
    Some(unsafe { CStr::from_ptr(ptr) }.to_bytes())
}

/// A payload slice; an empty slice for `len == 0` (the pointer may then be NULL).
///
/// # Safety
/// `ptr` points to `len` readable bytes alive for `'a` whenever `len > 0`.
unsafe fn payload<'a>(ptr: *const c_void, len: u32) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: `len` readable bytes at `ptr` (the caller's contract); u32 always fits usize on the
    // 32/64-bit targets Mosquitto supports.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) }
}

/// The identity of the client an event is about, read through the broker's accessors.
///
/// # Safety
/// `client` is NULL or a `struct mosquitto *` the broker passed to the current callback.
unsafe fn client<'a>(client: *mut Mosquitto) -> Client<'a> {
    if client.is_null() {
        return Client { key: 0, id: None, username: None, address: None };
    }
    // SAFETY: a live context; the accessors return its `id` / `username` strings (or NULL), which stay
    // valid for the callback (the broker frees them only when it disconnects or frees the context).
    let (id, username) =
        unsafe { (borrowed_str(mosquitto_client_id(client)), borrowed_str(mosquitto_client_username(client))) };
    // SAFETY: as above; `mosquitto_client_address` returns the context's `address` string (the peer's IP
    // address in text, set at accept) or NULL, valid for the callback.
    let address = unsafe { borrowed_str(mosquitto_client_address(client)) }.and_then(|a| a.parse().ok());
    Client { key: client as usize, id, username, address }
}

/// Copies `bytes` into memory from `mosquitto_malloc`, NUL-terminated like the broker's own payloads.
fn broker_copy(bytes: &[u8]) -> Option<(*mut c_void, u32)> {
    let len = u32::try_from(bytes.len()).ok()?;
    // SAFETY: plain allocation through the broker's allocator; checked for NULL below.
    let ptr = unsafe { mosquitto_malloc(bytes.len() + 1) }.cast::<u8>();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` has `len + 1` writable bytes, disjoint from `bytes`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len());
        ptr.add(bytes.len()).write(0);
    }
    Some((ptr.cast(), len))
}

/// Publishes `payload` from the broker itself (the broker copies it and queues it for its main loop).
fn broker_publish(topic: &str, payload: &[u8], qos: u8, retain: bool) -> c_int {
    let (Ok(topic), Ok(len)) = (CString::new(topic), c_int::try_from(payload.len())) else {
        return MOSQ_ERR_INVAL;
    };
    // SAFETY: NULL client id (= normal delivery), a NUL-terminated topic and `len` readable bytes, all alive
    // for the call; `_copy` duplicates the payload, so nothing of ours is retained; NULL properties.
    unsafe {
        mosquitto_broker_publish_copy(
            std::ptr::null(),
            topic.as_ptr(),
            len,
            payload.as_ptr().cast(),
            c_int::from(qos),
            retain,
            std::ptr::null_mut(),
        )
    }
}

/// The plugin instance behind `userdata`: the identifier (to unregister) and the safe state.
struct Loaded {
    id: *mut PluginId,
    plugin: crate::Active,
}

/// Runs `body` so that no panic unwinds into the broker: a panic yields `on_panic`.
fn guarded(userdata: *mut c_void, on_panic: c_int, body: impl FnOnce(&crate::Active) -> c_int) -> c_int {
    // SAFETY: `userdata` is the `Box<Loaded>` pointer registered with this callback; it is freed only in
    // `mosquitto_plugin_cleanup` after the callback is unregistered, and callbacks never run concurrently
    // (single broker thread), so a shared reference is valid for this call.
    let Some(loaded) = (unsafe { userdata.cast::<Loaded>().as_ref() }) else {
        return on_panic;
    };
    let plugin = &loaded.plugin;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(plugin))).unwrap_or_else(|_| {
        plugin.note_panic();
        on_panic
    })
}

#[cfg(not(test))]
unsafe extern "C" fn on_basic_auth(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    guarded(userdata, MOSQ_ERR_AUTH, |plugin| {
        // SAFETY: for MOSQ_EVT_BASIC_AUTH the broker passes a valid `mosquitto_evt_basic_auth *`.
        let Some(ev) = (unsafe { event_data.cast::<EvtBasicAuth>().as_ref() }) else {
            return MOSQ_ERR_AUTH;
        };
        // SAFETY: `ev.client` is the connecting context; `password` is NULL or the NUL-terminated copy the
        // broker read from CONNECT (`packet__read_binary` appends the NUL), alive for the call.
        let (client, password) = unsafe { (client(ev.client), borrowed_bytes(ev.password)) };
        if plugin.basic_auth(&client, password) {
            MOSQ_ERR_SUCCESS
        } else {
            MOSQ_ERR_AUTH
        }
    })
}

#[cfg(not(test))]
unsafe extern "C" fn on_acl_check(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    guarded(userdata, MOSQ_ERR_ACL_DENIED, |plugin| {
        // SAFETY: for MOSQ_EVT_ACL_CHECK the broker passes a valid `mosquitto_evt_acl_check *`.
        let Some(ev) = (unsafe { event_data.cast::<EvtAclCheck>().as_ref() }) else {
            return MOSQ_ERR_ACL_DENIED;
        };
        let access = match ev.access {
            MOSQ_ACL_READ => AclAccess::Read,
            MOSQ_ACL_WRITE => AclAccess::Write,
            MOSQ_ACL_SUBSCRIBE => AclAccess::Subscribe,
            MOSQ_ACL_UNSUBSCRIBE => AclAccess::Unsubscribe,
            _ => return MOSQ_ERR_ACL_DENIED,
        };
        // SAFETY: the context, topic (NUL-terminated) and `payloadlen` payload bytes are the broker's, alive
        // for the call (`mosquitto_acl_check` in src/security.c).
        let (client, topic, payload) =
            unsafe { (client(ev.client), borrowed_str(ev.topic), payload(ev.payload, ev.payloadlen)) };
        let Some(topic) = topic else { return MOSQ_ERR_ACL_DENIED };
        let payload_addr = ev.payload as usize;
        match plugin.acl_check(&client, access, topic, payload_addr, payload, ev.qos, ev.retain) {
            AclAction::Allow => MOSQ_ERR_SUCCESS,
            AclAction::Deny => MOSQ_ERR_ACL_DENIED,
            AclAction::DenyAndPublish(sealed) => {
                let rc = broker_publish(topic, &sealed, ev.qos, ev.retain);
                if rc != MOSQ_ERR_SUCCESS {
                    plugin.log(Level::Warning, &format!("sealed will on {topic} not queued (error {rc})"));
                }
                MOSQ_ERR_ACL_DENIED
            }
        }
    })
}

#[cfg(not(test))]
unsafe extern "C" fn on_message(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    guarded(userdata, MOSQ_ERR_ACL_DENIED, |plugin| {
        // SAFETY: for MOSQ_EVT_MESSAGE the broker passes a valid, writable `mosquitto_evt_message *`.
        let Some(ev) = (unsafe { event_data.cast::<EvtMessage>().as_mut() }) else {
            return MOSQ_ERR_ACL_DENIED;
        };
        // SAFETY: the context, topic and `payloadlen` payload bytes are the broker's message store, alive
        // for the call (`plugin__handle_message` in src/plugin.c).
        let (client, topic, payload) =
            unsafe { (client(ev.client), borrowed_str(ev.topic), payload(ev.payload, ev.payloadlen)) };
        let Some(topic) = topic else { return MOSQ_ERR_ACL_DENIED };
        match plugin.message(&client, topic, ev.payload as usize, payload, ev.qos, ev.retain) {
            MessageAction::Keep => MOSQ_ERR_SUCCESS,
            MessageAction::Deny => MOSQ_ERR_ACL_DENIED,
            MessageAction::Replace(bytes) => match broker_copy(&bytes) {
                // The broker sees the pointer changed, frees its old buffer and adopts ours (plugin.c:
                // `if(stored->payload != event_data.payload){ mosquitto__free(stored->payload); ... }`), so
                // the old one must not be freed here and ours must come from `mosquitto_malloc`.
                Some((ptr, len)) => {
                    ev.payload = ptr;
                    ev.payloadlen = len;
                    MOSQ_ERR_SUCCESS
                }
                // Refused rather than stored as plaintext.
                None => MOSQ_ERR_ACL_DENIED,
            },
        }
    })
}

#[cfg(not(test))]
unsafe extern "C" fn on_disconnect(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    guarded(userdata, MOSQ_ERR_SUCCESS, |plugin| {
        // SAFETY: for MOSQ_EVT_DISCONNECT the broker passes a valid `mosquitto_evt_disconnect *`.
        if let Some(ev) = unsafe { event_data.cast::<EvtDisconnect>().as_ref() } {
            plugin.disconnect(ev.client as usize);
        }
        MOSQ_ERR_SUCCESS
    })
}

/// The events and their callbacks, registered in this order and unregistered in reverse.
#[cfg(not(test))]
const CALLBACKS: [(c_int, Callback); 4] = [
    (MOSQ_EVT_BASIC_AUTH, on_basic_auth),
    (MOSQ_EVT_ACL_CHECK, on_acl_check),
    (MOSQ_EVT_MESSAGE, on_message),
    (MOSQ_EVT_DISCONNECT, on_disconnect),
];

/// Negotiates the plugin interface: 5 if the broker offers it, else -1 (the broker then refuses to load).
///
/// # Safety
/// `supported_versions` points to `supported_version_count` ints (the broker's `{5, 4, 3, 2}`).
#[cfg(not(test))]
#[no_mangle]
#[allow(unreachable_pub)] // exported to the broker by symbol name, not through Rust paths
pub unsafe extern "C" fn mosquitto_plugin_version(
    supported_version_count: c_int,
    supported_versions: *const c_int,
) -> c_int {
    let count = usize::try_from(supported_version_count).unwrap_or(0);
    if supported_versions.is_null() || count == 0 {
        return -1;
    }
    // SAFETY: `count` ints at `supported_versions` (the broker's contract), read-only for the call.
    let offered = unsafe { std::slice::from_raw_parts(supported_versions, count) };
    if offered.contains(&MOSQ_PLUGIN_VERSION) {
        MOSQ_PLUGIN_VERSION
    } else {
        -1
    }
}

/// Reads the `plugin_opt_*` options, loads the gate and registers the callbacks.
///
/// # Safety
/// Called by the broker with its plugin identifier, a writable `userdata` slot and `option_count`
/// key/value pairs of NUL-terminated strings.
#[cfg(not(test))]
#[no_mangle]
#[allow(unreachable_pub)] // exported to the broker by symbol name, not through Rust paths
pub unsafe extern "C" fn mosquitto_plugin_init(
    identifier: *mut PluginId,
    userdata: *mut *mut c_void,
    options: *mut MosquittoOpt,
    option_count: c_int,
) -> c_int {
    let started = std::panic::catch_unwind(|| {
        let count = usize::try_from(option_count).unwrap_or(0);
        let opts: &[MosquittoOpt] = if options.is_null() || count == 0 {
            &[]
        } else {
            // SAFETY: `count` options at `options`, alive for the call (the broker's config).
            unsafe { std::slice::from_raw_parts(options, count) }
        };
        let mut pairs = Vec::with_capacity(opts.len());
        for opt in opts {
            // SAFETY: key and value are NUL-terminated strings (or NULL) owned by the broker's config.
            let (key, value) = unsafe { (borrowed_str(opt.key), borrowed_str(opt.value)) };
            pairs.push((key.unwrap_or_default().to_owned(), value.unwrap_or_default().to_owned()));
        }
        crate::Active::start(&pairs, log)
    });
    let plugin = match started {
        Ok(Ok(plugin)) => plugin,
        Ok(Err(e)) => {
            log(Level::Error, &format!("not loaded: {e}"));
            return MOSQ_ERR_INVAL;
        }
        Err(_) => {
            log(Level::Error, "not loaded: panic during initialisation");
            return MOSQ_ERR_UNKNOWN;
        }
    };
    if identifier.is_null() || userdata.is_null() {
        return MOSQ_ERR_INVAL;
    }
    let raw = Box::into_raw(Box::new(Loaded { id: identifier, plugin })).cast::<c_void>();
    for (done, (event, callback)) in CALLBACKS.iter().enumerate() {
        // SAFETY: the broker's identifier, a callback with the generic signature, no event data, and our
        // live `Box<Loaded>` as userdata (freed only after unregistering).
        let rc = unsafe { mosquitto_callback_register(identifier, *event, *callback, std::ptr::null(), raw) };
        if rc != MOSQ_ERR_SUCCESS {
            log(Level::Error, &format!("not loaded: registering event {event} failed (error {rc})"));
            for (event, callback) in CALLBACKS[..done].iter().rev() {
                // SAFETY: unregistering what was just registered with the same identifier.
                unsafe { mosquitto_callback_unregister(identifier, *event, *callback, std::ptr::null()) };
            }
            // SAFETY: `raw` came from `Box::into_raw` above and no callback refers to it any more.
            drop(unsafe { Box::from_raw(raw.cast::<Loaded>()) });
            return if rc == MOSQ_ERR_NOMEM { MOSQ_ERR_NOMEM } else { MOSQ_ERR_UNKNOWN };
        }
    }
    // SAFETY: `userdata` is the broker's writable slot; it hands the pointer back to cleanup.
    unsafe { userdata.write(raw) };
    MOSQ_ERR_SUCCESS
}

/// Unregisters the callbacks and drops the state (logging the counters, stopping the metrics thread).
///
/// # Safety
/// `userdata` is the pointer `mosquitto_plugin_init` stored (or NULL), passed once at broker shutdown.
#[cfg(not(test))]
#[no_mangle]
#[allow(unreachable_pub)] // exported to the broker by symbol name, not through Rust paths
pub unsafe extern "C" fn mosquitto_plugin_cleanup(
    userdata: *mut c_void,
    _options: *mut MosquittoOpt,
    _option_count: c_int,
) -> c_int {
    if userdata.is_null() {
        return MOSQ_ERR_SUCCESS;
    }
    // SAFETY: our `Box<Loaded>` pointer from init; the broker calls cleanup once and never uses it after.
    let loaded = unsafe { Box::from_raw(userdata.cast::<Loaded>()) };
    for (event, callback) in CALLBACKS.iter().rev() {
        // SAFETY: the identifier the callbacks were registered with; it is still valid during cleanup (the
        // broker frees it right after this call returns).
        unsafe { mosquitto_callback_unregister(loaded.id, *event, *callback, std::ptr::null()) };
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || loaded.plugin.stop()));
    MOSQ_ERR_SUCCESS
}

#[cfg(test)]
#[path = "ffi_layout_tests.rs"]
mod tests;
