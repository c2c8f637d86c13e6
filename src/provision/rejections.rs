//! Rejected logins must stay auditable although the caller's transaction
//! aborts with the rejection. When saml_jit is in shared_preload_libraries, a
//! rejection is copied into a bounded ring in shared memory and a background
//! worker ("saml_jit audit writer") inserts it into saml_jit.audit_log in its
//! own transaction. The ring never grows: when it is full the record is
//! dropped and counted (saml_jit_audit_queue() shows the counters). Without
//! preloading there is no shared memory, so the rejection goes to the server
//! log instead (LOG level, one line per rejection).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;

use crate::pg::jsonb::Jsonb;

use crate::gucs;

/// Ring capacity: at the worker's pace (hundreds of rows per 100 ms) a flood
/// larger than this within one drain interval is dropped and counted.
const SLOTS: usize = 4096;
/// Rows written per transaction by the worker.
const BATCH: usize = 256;

/// A fixed-size UTF-8 string (shared memory cannot hold heap pointers).
#[derive(Copy, Clone)]
#[repr(C)]
struct Text<const N: usize> {
    len: u16,
    bytes: [u8; N],
}

impl<const N: usize> Text<N> {
    const EMPTY: Self = Text {
        len: 0,
        bytes: [0; N],
    };

    fn new(s: &str) -> Self {
        let mut end = s.len().min(N);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut t = Self::EMPTY;
        t.bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        t.len = end as u16;
        t
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }

    fn opt(&self) -> Option<&str> {
        (self.len > 0).then(|| self.as_str())
    }
}

/// One rejected login, as queued.
#[derive(Copy, Clone)]
#[repr(C)]
struct Slot {
    database: u32,
    occurred_at: i64,
    idp_id: i64,
    reason: Text<32>,
    client_addr: Text<64>,
    issuer: Text<256>,
    subject: Text<256>,
    assertion_id: Text<128>,
    detail: Text<1024>,
}

/// The queue in shared memory. All-zero bytes are its valid empty state, so
/// it is initialized in place (it is megabytes: never built on a stack).
#[repr(C)]
pub struct Ring {
    /// Next slot to write (monotonic; index = head % SLOTS).
    head: u64,
    /// Next slot the worker reads.
    tail: u64,
    dropped_full: u64,
    dropped_other_database: u64,
    written: u64,
    slots: [Slot; SLOTS],
}

const SHMEM_NAME: &std::ffi::CStr = c"saml_jit_rejections";
static mut RING_PTR: *mut Ring = std::ptr::null_mut();
static mut RING_LOCK: *mut pg_sys::LWLock = std::ptr::null_mut();
static mut PREV_SHMEM_REQUEST: Option<unsafe extern "C-unwind" fn()> = None;
static mut PREV_SHMEM_STARTUP: Option<unsafe extern "C-unwind" fn()> = None;
static PRELOADED: AtomicBool = AtomicBool::new(false);

unsafe fn request_shmem() {
    pg_sys::RequestAddinShmemSpace(std::mem::size_of::<Ring>());
    pg_sys::RequestNamedLWLockTranche(SHMEM_NAME.as_ptr(), 1);
}

#[cfg(not(any(feature = "pg13", feature = "pg14")))]
#[pg_guard]
unsafe extern "C-unwind" fn on_shmem_request() {
    if let Some(prev) = PREV_SHMEM_REQUEST {
        prev();
    }
    request_shmem();
}

#[pg_guard]
unsafe extern "C-unwind" fn on_shmem_startup() {
    if let Some(prev) = PREV_SHMEM_STARTUP {
        prev();
    }
    // AddinShmemInitLock serializes the attach of every add-in's segment.
    let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
    pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
    let mut found = false;
    let ring =
        pg_sys::ShmemInitStruct(SHMEM_NAME.as_ptr(), std::mem::size_of::<Ring>(), &mut found)
            .cast::<Ring>();
    if !found {
        std::ptr::write_bytes(ring, 0, 1);
    }
    RING_PTR = ring;
    RING_LOCK = &raw mut (*pg_sys::GetNamedLWLockTranche(SHMEM_NAME.as_ptr())).lock;
    pg_sys::LWLockRelease(init_lock);
}

/// Runs `f` on the ring under its lock (exclusive or shared).
fn with_ring<R>(exclusive: bool, f: impl FnOnce(&mut Ring) -> R) -> R {
    let mode = if exclusive {
        pg_sys::LWLockMode::LW_EXCLUSIVE
    } else {
        pg_sys::LWLockMode::LW_SHARED
    };
    // SAFETY: only called when PRELOADED, i.e. after on_shmem_startup set
    // both pointers; the LWLock guards the ring across processes, and an
    // ERROR in between releases it through LWLockReleaseAll.
    unsafe {
        pg_sys::LWLockAcquire(RING_LOCK, mode);
        let result = f(&mut *RING_PTR);
        pg_sys::LWLockRelease(RING_LOCK);
        result
    }
}

/// Called from _PG_init: shared memory and the worker exist only when the
/// library is preloaded.
pub fn init() {
    // SAFETY: reading a postmaster global during library load.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    // SAFETY: hook installation during shared_preload_libraries processing.
    unsafe {
        #[cfg(not(any(feature = "pg13", feature = "pg14")))]
        {
            PREV_SHMEM_REQUEST = pg_sys::shmem_request_hook;
            pg_sys::shmem_request_hook = Some(on_shmem_request);
        }
        #[cfg(any(feature = "pg13", feature = "pg14"))]
        request_shmem();
        PREV_SHMEM_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(on_shmem_startup);
    }
    BackgroundWorkerBuilder::new("saml_jit audit writer")
        .set_type("saml_jit audit writer")
        .set_function("saml_jit_audit_writer_main")
        .set_library("saml_jit")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
    PRELOADED.store(true, Ordering::Relaxed);
}

/// What a rejection leaves behind. Issuer, subject and assertion ID are as
/// the message claimed them: a rejected message is not trusted.
pub struct Rejection<'a> {
    pub reason: &'a str,
    pub detail: &'a str,
    pub idp_id: Option<i64>,
    pub issuer: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub assertion_id: Option<&'a str>,
    pub client_addr: Option<&'a str>,
}

/// Queues the rejection for the audit writer, or logs it when not preloaded.
pub fn record(r: &Rejection<'_>) {
    if !PRELOADED.load(Ordering::Relaxed) {
        pgrx::log!(
            "saml_jit: rejected login: reason={} issuer={:?} assertion_id={:?} client_addr={:?}: {} \
             (not in saml_jit.audit_log: add saml_jit to shared_preload_libraries)",
            r.reason,
            r.issuer.unwrap_or(""),
            r.assertion_id.unwrap_or(""),
            r.client_addr.unwrap_or(""),
            r.detail
        );
        return;
    }
    let slot = Slot {
        // SAFETY: MyDatabaseId is set for every backend that can run SQL.
        database: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        occurred_at: crate::pg::timestamptz(chrono::Utc::now()).into_inner(),
        idp_id: r.idp_id.unwrap_or(0),
        reason: Text::new(r.reason),
        client_addr: Text::new(r.client_addr.unwrap_or("")),
        issuer: Text::new(r.issuer.unwrap_or("")),
        subject: Text::new(r.subject.unwrap_or("")),
        assertion_id: Text::new(r.assertion_id.unwrap_or("")),
        detail: Text::new(r.detail),
    };
    with_ring(true, |ring| {
        if ring.head - ring.tail >= SLOTS as u64 {
            ring.dropped_full += 1;
            return;
        }
        let at = (ring.head % SLOTS as u64) as usize;
        ring.slots[at] = slot;
        ring.head += 1;
    });
}

/// Counters of the rejection queue.
#[pg_extern(volatile)]
fn saml_jit_audit_queue() -> TableIterator<
    'static,
    (
        name!(preloaded, bool),
        name!(queued, i64),
        name!(written, i64),
        name!(dropped_queue_full, i64),
        name!(dropped_other_database, i64),
        name!(audit_database, String),
    ),
> {
    let database = gucs::audit_database();
    if !PRELOADED.load(Ordering::Relaxed) {
        return TableIterator::once((false, 0, 0, 0, 0, database));
    }
    let counters = with_ring(false, |ring| {
        (
            (ring.head - ring.tail) as i64,
            ring.written as i64,
            ring.dropped_full as i64,
            ring.dropped_other_database as i64,
        )
    });
    TableIterator::once((
        true, counters.0, counters.1, counters.2, counters.3, database,
    ))
}

const INSERT_REJECTION: &str = "
    INSERT INTO saml_jit.audit_log
           (occurred_at, event, reason, idp_id, subject, assertion_id, client_addr, detail)
    VALUES ($1, 'rejected', $2, $3, $4, $5, $6::inet, $7)";

/// The audit writer: drains the ring into saml_jit.audit_log of
/// saml_jit.audit_database, one transaction per batch. It exits with code 1
/// whenever it stops (terminated, its database dropped), so the postmaster
/// starts it again after the restart interval; records wait in the ring.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn saml_jit_audit_writer_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(Some(&gucs::audit_database()), None);
    // SAFETY: set once the worker is connected.
    let my_database = unsafe { pg_sys::MyDatabaseId }.to_u32();
    while BackgroundWorker::wait_latch(Some(Duration::from_millis(100))) {
        loop {
            let batch = take_batch(my_database);
            if batch.is_empty() {
                break;
            }
            let n = batch.len();
            let ready = BackgroundWorker::transaction(|| write_batch(&batch));
            if !ready {
                // The extension is not installed in this database yet: keep
                // the records (the ring bounds them) and try again later.
                break;
            }
            with_ring(true, |ring| {
                ring.tail += n as u64;
                ring.written += n as u64;
            });
        }
    }
    // SAFETY: a clean exit with a non-zero code asks for a restart.
    unsafe { pg_sys::proc_exit(1) }
}

/// Copies up to BATCH queued records of this database (records of other
/// databases cannot be written from here: they are dropped and counted).
fn take_batch(my_database: u32) -> Vec<Slot> {
    with_ring(true, |ring| take_batch_locked(ring, my_database))
}

fn take_batch_locked(ring: &mut Ring, my_database: u32) -> Vec<Slot> {
    while ring.tail < ring.head {
        let at = (ring.tail % SLOTS as u64) as usize;
        if ring.slots[at].database == my_database {
            break;
        }
        ring.tail += 1;
        ring.dropped_other_database += 1;
    }
    let mut batch = Vec::new();
    let mut i = ring.tail;
    while i < ring.head && batch.len() < BATCH {
        let slot = ring.slots[(i % SLOTS as u64) as usize];
        if slot.database != my_database {
            break;
        }
        batch.push(slot);
        i += 1;
    }
    batch
}

fn write_batch(batch: &[Slot]) -> bool {
    Spi::connect_mut(|client| {
        let installed = client
            .select(
                "SELECT to_regclass('saml_jit.audit_log') IS NOT NULL",
                None,
                &[],
            )
            .and_then(|t| t.first().get_one::<bool>())
            .ok()
            .flatten()
            .unwrap_or(false);
        if !installed {
            return false;
        }
        for s in batch {
            let detail = serde_json::json!({
                "detail": s.detail.as_str(),
                "claimed_issuer": s.issuer.opt(),
                "unverified": true,
            });
            let idp_id = (s.idp_id != 0).then_some(s.idp_id);
            let at = TimestampWithTimeZone::try_from(s.occurred_at).ok();
            client
                .update(
                    INSERT_REJECTION,
                    None,
                    &[
                        at.into(),
                        s.reason.as_str().into(),
                        idp_id.into(),
                        s.subject.opt().into(),
                        s.assertion_id.opt().into(),
                        s.client_addr.opt().into(),
                        Jsonb::owned(detail).into(),
                    ],
                )
                .expect("insert a rejection into saml_jit.audit_log");
        }
        true
    })
}
