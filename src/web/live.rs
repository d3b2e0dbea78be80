//! The live console's plumbing: one `LISTEN` connection per server process, fanned out to its
//! open event streams, with the limits that keep a crowd of them bounded.
//!
//! A change flows: a commit anywhere (this process, another server, a `sluice worker`) fires a
//! trigger's `NOTIFY` → [`listen`] reads it and bumps the generation → every stream's task
//! hears it on the broadcast channel, asks whether its view concerns it, and if so reads the
//! view's data once per generation for all streams that share it ([`Hub::shared`]), renders
//! its own fragments (its user's buttons) and sends only those that changed.
//!
//! Data every stream of a view shares whoever watches (a pipeline's state) is read by the
//! listener itself before it tells the streams ([`Hub::prefetch`]), on connections of its own:
//! the HTTP workers are busy waking a crowd of streams just then, and a read driven by them
//! waits behind every one of those wake-ups.
//! What the streams show lives in `console::live`.

use std::any::Any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::Bytes;
use tokio::sync::{OnceCell, broadcast, mpsc, watch};
use uuid::Uuid;

use crate::db::changes::{self, Change};
use crate::ops::Services;

/// How many streams one user may hold open on one process (tabs, windows). One more ends the
/// user's oldest: a browser closing a page is noticed only at the next write, so a user going
/// quickly from page to page must not be refused for streams that are already dead.
pub const STREAMS_PER_USER: usize = 16;
/// How many streams one process serves at most.
pub const STREAMS_PER_PROCESS: usize = 10_000;
/// A comment line this often keeps proxies from closing an idle stream and finds dead clients.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Messages a stream may have waiting for its client (each at most a few hundred lines of a log,
/// so about 100 KB); a client that leaves it full for `console::live`'s 10 s is dropped (its
/// browser reconnects and gets a fresh snapshot) rather than buffered.
pub const STREAM_QUEUE: usize = 16;
/// Changes the fan-out keeps for a stream that is busy; one that falls behind refreshes whole.
const FAN_OUT: usize = 1024;
/// Connections the listener reads prefetched data on.
const PREFETCH_CONNECTIONS: u32 = 2;
/// How long the listener waits for prefetched data before telling the streams anyway (each
/// then waits for the read in flight, or makes its own).
const PREFETCH_WAIT: Duration = Duration::from_millis(500);

/// The live updates of one server process.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    changes: broadcast::Sender<Change>,
    /// Bumped for every change heard: data read at a generation is fresh for it.
    generation: AtomicU64,
    closing: watch::Sender<bool>,
    /// Each user's streams, oldest first.
    by_user: Mutex<HashMap<Uuid, Vec<Held>>>,
    /// Streams counted against the caps (an evicted one is not, even before its task ends).
    open: AtomicUsize,
    next_slot: AtomicU64,
    shared: Mutex<HashMap<String, Shared>>,
    /// Shared values the listener makes as soon as a change concerning them is heard.
    prefetch: Mutex<HashMap<String, Prefetch>>,
}

type Value = Arc<dyn Any + Send + Sync>;
/// Not `Send`: the listener runs on a thread of its own, and the operations a load goes through
/// are not provably `Send` (their async closures).
type Load = Pin<Box<dyn Future<Output = Result<Value, ()>>>>;

struct Prefetch {
    /// The change that makes it stale (and [`Change::Access`], [`Change::Resync`]).
    on: Change,
    load: Arc<dyn Fn(Services) -> Load + Send + Sync>,
    /// Streams that asked for it; at none it is forgotten.
    watchers: usize,
}

impl Prefetch {
    fn concerned(&self, change: &Change) -> bool {
        self.on == *change || matches!(change, Change::Access | Change::Resync)
    }
}

/// A stream held by a user: its slot's id, and how to end it.
type Held = (u64, Arc<tokio::sync::Notify>);

struct Shared {
    generation: u64,
    cell: Arc<OnceCell<Arc<dyn Any + Send + Sync>>>,
}

/// Why a stream could not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The process serves [`STREAMS_PER_PROCESS`] already.
    TooManyForProcess,
    /// The server is shutting down.
    Closing,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(FAN_OUT);
        let (closing, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                changes,
                generation: AtomicU64::new(0),
                closing,
                by_user: Mutex::new(HashMap::new()),
                open: AtomicUsize::new(0),
                next_slot: AtomicU64::new(0),
                shared: Mutex::new(HashMap::new()),
                prefetch: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts this process's one listener (reconnecting, with a resync after every gap) on a
    /// thread of its own, so that nothing else ever delays hearing a change or prefetching for
    /// it; its connections (made lazily) are driven by that thread too.
    pub fn start(&self, services: &Services) -> std::io::Result<()> {
        let reads = Services {
            // The listening connection, and those prefetches read on.
            pool: crate::db::lazy_pool(&services.pool, 1 + PREFETCH_CONNECTIONS),
            ..services.clone()
        };
        let hub = Arc::downgrade(&self.inner);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("sluice-live".into())
            .spawn(move || {
                tokio::task::LocalSet::new().block_on(&runtime, listen(hub, reads));
            })?;
        Ok(())
    }

    /// Ends every stream and refuses new ones: called first at shutdown, so that HTTP can drain.
    pub fn shutdown(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Takes a stream slot for `user` (given back when the [`Slot`] drops), ending the user's
    /// oldest stream if they hold [`STREAMS_PER_USER`] already; or says why not.
    pub fn reserve(&self, user: Uuid) -> Result<Slot, Refused> {
        if *self.inner.closing.borrow() {
            return Err(Refused::Closing);
        }
        let mut by_user = lock(&self.inner.by_user);
        let mine = by_user.entry(user).or_default();
        // Counted under the lock, so concurrent opens cannot pass a cap together.
        if mine.len() >= STREAMS_PER_USER {
            let (_, oldest) = mine.remove(0);
            oldest.notify_one();
            self.inner.open.fetch_sub(1, Ordering::Relaxed);
        } else if self.inner.open.load(Ordering::Relaxed) >= STREAMS_PER_PROCESS {
            if mine.is_empty() {
                by_user.remove(&user);
            }
            return Err(Refused::TooManyForProcess);
        }
        let id = self.inner.next_slot.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(tokio::sync::Notify::new());
        mine.push((id, evicted.clone()));
        self.inner.open.fetch_add(1, Ordering::Relaxed);
        crate::metrics::live_stream(true);
        Ok(Slot {
            hub: self.clone(),
            user,
            id,
            evicted,
        })
    }

    /// Changes as they are heard, and the shutdown signal.
    pub fn subscribe(&self) -> (broadcast::Receiver<Change>, watch::Receiver<bool>) {
        (
            self.inner.changes.subscribe(),
            self.inner.closing.subscribe(),
        )
    }

    /// Announces a change to this process's streams (the listener does), once the prefetched
    /// values it concerns are made for the generation it starts (or [`PREFETCH_WAIT`] passed).
    async fn announce(&self, change: Change, reads: &Services) {
        self.next_generation();
        let loads: Vec<_> = lock(&self.inner.prefetch)
            .iter()
            .filter(|(_, p)| p.concerned(&change))
            .map(|(key, p)| (key.clone(), p.load.clone()))
            .collect();
        if !loads.is_empty() {
            let made = futures_util::future::join_all(loads.into_iter().map(|(key, load)| {
                let reads = reads.clone();
                self.shared_value(key, move || load(reads))
            }));
            // A failed read is left to the streams: each makes its own and reports its error.
            let _ = tokio::time::timeout(PREFETCH_WAIT, made).await;
        }
        // No receiver is not an error: nobody is watching.
        let _ = self.inner.changes.send(change);
    }

    /// Makes every shared value made so far stale.
    fn next_generation(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Has the listener make `key`'s shared value (see [`Hub::shared`]) whenever `on` (or a
    /// change of access, or a resync) is heard, until the returned guard drops: for values that
    /// are the same for every viewer. The first stream's `make` is the one used.
    pub fn prefetch<T, E, F, Fut>(&self, key: String, on: Change, make: F) -> Prefetching
    where
        T: Send + Sync + 'static,
        F: Fn(Services) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
    {
        let mut prefetch = lock(&self.inner.prefetch);
        let entry = prefetch.entry(key.clone()).or_insert_with(|| Prefetch {
            on,
            load: Arc::new(move |services| {
                let made = make(services);
                Box::pin(async move { made.await.map(|v| Arc::new(v) as Value).map_err(|_| ()) })
            }),
            watchers: 0,
        });
        entry.watchers += 1;
        Prefetching {
            hub: self.clone(),
            key,
        }
    }

    /// The value of `key` for the current generation, made once by whichever stream asks first
    /// and shared with every other that asks before the next change.
    pub async fn shared<T, E, F, Fut>(&self, key: String, make: F) -> Result<Arc<T>, E>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let value = self
            .shared_value(key, || async { make().await.map(|v| Arc::new(v) as Value) })
            .await?;
        Ok(value
            .downcast::<T>()
            .expect("one key always holds one type of value"))
    }

    async fn shared_value<E, F, Fut>(&self, key: String, make: F) -> Result<Value, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, E>>,
    {
        // Read before the data: what is read after this load is at least this fresh.
        let generation = self.inner.generation.load(Ordering::Acquire);
        let cell = {
            let mut shared = lock(&self.inner.shared);
            if shared.len() > 4096 {
                shared.retain(|_, s| s.generation == generation);
            }
            let entry = shared.entry(key).or_insert_with(|| Shared {
                generation,
                cell: Arc::new(OnceCell::new()),
            });
            if entry.generation != generation {
                *entry = Shared {
                    generation,
                    cell: Arc::new(OnceCell::new()),
                };
            }
            entry.cell.clone()
        };
        Ok(cell.get_or_try_init(make).await?.clone())
    }
}

/// A stream's interest in a prefetched value ([`Hub::prefetch`]), given up when it drops.
pub struct Prefetching {
    hub: Hub,
    key: String,
}

impl Drop for Prefetching {
    fn drop(&mut self) {
        let mut prefetch = lock(&self.hub.inner.prefetch);
        if let Some(entry) = prefetch.get_mut(&self.key) {
            entry.watchers -= 1;
            if entry.watchers == 0 {
                prefetch.remove(&self.key);
            }
        }
    }
}

/// A lock whose holder panicking leaves nothing half-changed that matters here.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A stream's place in the caps, given back when the stream ends.
pub struct Slot {
    hub: Hub,
    user: Uuid,
    id: u64,
    evicted: Arc<tokio::sync::Notify>,
}

impl Slot {
    /// Resolves when a newer stream of the same user took this one's place.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_user = lock(&self.hub.inner.by_user);
        if let Some(mine) = by_user.get_mut(&self.user) {
            let before = mine.len();
            mine.retain(|(id, _)| *id != self.id);
            if mine.len() < before {
                self.hub.inner.open.fetch_sub(1, Ordering::Relaxed);
            }
            if mine.is_empty() {
                by_user.remove(&self.user);
            }
        }
        crate::metrics::live_stream(false);
    }
}

/// The listener's loop. It holds the hub weakly: once the server that owns the hub is gone
/// (dropped without a shutdown, as a test's server is), the closing channel's sender goes with
/// it and the loop ends, and with it the thread.
async fn listen(hub: std::sync::Weak<Inner>, reads: Services) {
    let Some(mut closing) = hub.upgrade().map(|inner| inner.closing.subscribe()) else {
        return;
    };
    let announce = async |change: Change| {
        if let Some(inner) = hub.upgrade() {
            Hub { inner }.announce(change, &reads).await;
        }
    };
    loop {
        if *closing.borrow() {
            return;
        }
        // On the listener's own pool: its connection is driven by this thread too.
        match changes::listen(&reads.pool).await {
            Ok(mut listener) => {
                // Whatever happened while nobody listened: every stream refreshes.
                announce(Change::Resync).await;
                loop {
                    tokio::select! {
                        _ = closing.changed() => return,
                        next = listener.try_recv() => match next {
                            Ok(Some(n)) => {
                                if let Some(change) = Change::parse(n.payload()) {
                                    announce(change).await;
                                }
                            }
                            // The connection was lost; the next call reconnects, and what was
                            // said meanwhile is lost: resync.
                            Ok(None) => announce(Change::Resync).await,
                            Err(e) => {
                                tracing::warn!(error = %e, "live updates: the listener failed; reconnecting");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "live updates: cannot listen; retrying"),
        }
        tokio::select! {
            _ = closing.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One server-sent event: `event` named, with an optional id, its data split into `data:`
/// lines at every line break SSE knows (CR, LF, CRLF), so no text can end it early.
pub fn event(name: &str, id: Option<&str>, data: &str) -> Bytes {
    let mut lines = String::with_capacity(data.len() + 16);
    push_data_lines(&mut lines, data);
    framed_event(name, id, &lines)
}

/// `data` as the `data:` lines of an event (what [`framed_event`] takes). Pieces framed one
/// after another are their data joined by line feeds (unless one ends with a CR, which the
/// join would turn into one CRLF line break instead of two).
pub fn push_data_lines(out: &mut String, data: &str) {
    for line in data.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
}

/// An event whose data is already framed as `data:` lines ([`push_data_lines`]).
pub fn framed_event(name: &str, id: Option<&str>, lines: &str) -> Bytes {
    let mut out = String::with_capacity(lines.len() + 64);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    out.push_str(lines);
    out.push('\n');
    Bytes::from(out)
}

/// The comment line sent as a keep-alive.
pub fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

/// A stream's outgoing queue: what its task sends and the response body reads.
pub fn queue() -> (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
    mpsc::channel(STREAM_QUEUE)
}

/// The response body of a stream: its queue, until the task drops the sender.
pub fn body(
    rx: mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok(bytes), rx))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_data_at_every_line_break() {
        let e = event("change", Some("7"), "a\nb\r\nc\rd");
        assert_eq!(
            std::str::from_utf8(&e).unwrap(),
            "id: 7\nevent: change\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(
            std::str::from_utf8(&event("close", None, "")).unwrap(),
            "event: close\ndata: \n\n"
        );
    }

    #[test]
    fn data_framed_in_pieces_is_the_data_of_their_concatenation() {
        let pieces = ["<a>\n<b>", "", "c\r\nd\re", "f\n"];
        let mut framed = String::new();
        for piece in pieces {
            push_data_lines(&mut framed, piece);
        }
        assert_eq!(
            framed_event("change", None, &framed),
            event("change", None, &pieces.join("\n"))
        );
    }

    #[tokio::test]
    async fn one_stream_too_many_ends_the_users_oldest() {
        let hub = Hub::new();
        let user = Uuid::new_v4();
        let mut slots: Vec<Slot> = (0..STREAMS_PER_USER)
            .map(|_| hub.reserve(user).unwrap())
            .collect();
        let newest = hub.reserve(user).unwrap();
        assert_eq!(hub.open_streams(), STREAMS_PER_USER);
        // The oldest was told (a permit waits for it), the others were not.
        tokio::time::timeout(Duration::from_secs(1), slots[0].evicted())
            .await
            .expect("the oldest is evicted");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), slots[1].evicted())
                .await
                .is_err()
        );
        // Its end gives nothing back twice.
        slots.remove(0);
        assert_eq!(hub.open_streams(), STREAMS_PER_USER);
        assert!(hub.reserve(Uuid::new_v4()).is_ok());
        drop((slots, newest));
        assert_eq!(hub.open_streams(), 0);
        hub.shutdown();
        assert_eq!(hub.reserve(user).err(), Some(Refused::Closing));
    }

    /// Services whose database is never reached (the loads below do not touch it).
    fn offline_services() -> Services {
        let root = crate::sealing::MasterKey::generate();
        let chain = crate::audit::ChainKey::from_master(&root);
        Services::new(
            sqlx::postgres::PgPoolOptions::new()
                .connect_lazy("postgres://nobody@localhost/nothing")
                .unwrap(),
            crate::identity::PasswordHasher::new(1),
            Default::default(),
            Default::default(),
            crate::ops::keys::Keys { root, chain },
        )
    }

    #[tokio::test]
    async fn prefetched_values_are_made_before_the_streams_hear_and_only_while_watched() {
        let hub = Hub::new();
        let reads = offline_services();
        let made = Arc::new(AtomicUsize::new(0));
        let pipeline = Uuid::new_v4();
        let prefetch = |made: Arc<AtomicUsize>| {
            hub.prefetch("p".into(), Change::Pipeline(pipeline), move |_| {
                let n = made.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, Infallible>(n) }
            })
        };
        // Two streams watch it: one load per change all the same.
        let (first, second) = (prefetch(made.clone()), prefetch(made.clone()));
        let (mut heard, _) = hub.subscribe();
        hub.announce(Change::Pipeline(pipeline), &reads).await;
        assert_eq!(made.load(Ordering::SeqCst), 1);
        assert_eq!(heard.try_recv().unwrap(), Change::Pipeline(pipeline));
        // What a stream asks for now is what the listener made: it makes nothing itself.
        let got = hub
            .shared("p".into(), || async { Ok::<usize, Infallible>(99) })
            .await
            .unwrap();
        assert_eq!(*got, 0);
        // Another pipeline's change loads nothing; a change of access or a resync does.
        hub.announce(Change::Pipeline(Uuid::new_v4()), &reads).await;
        assert_eq!(made.load(Ordering::SeqCst), 1);
        hub.announce(Change::Access, &reads).await;
        hub.announce(Change::Resync, &reads).await;
        assert_eq!(made.load(Ordering::SeqCst), 3);
        // Once nobody watches, nothing is loaded.
        drop(first);
        hub.announce(Change::Pipeline(pipeline), &reads).await;
        assert_eq!(made.load(Ordering::SeqCst), 4);
        drop(second);
        hub.announce(Change::Pipeline(pipeline), &reads).await;
        assert_eq!(made.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn shared_values_are_made_once_per_generation() {
        let hub = Hub::new();
        let made = Arc::new(AtomicUsize::new(0));
        let make = |made: Arc<AtomicUsize>| async move {
            Ok::<_, Infallible>(made.fetch_add(1, Ordering::SeqCst))
        };
        let a = hub.shared("k".into(), || make(made.clone())).await.unwrap();
        let b = hub.shared("k".into(), || make(made.clone())).await.unwrap();
        assert_eq!((*a, *b), (0, 0));
        hub.next_generation();
        let c = hub.shared("k".into(), || make(made.clone())).await.unwrap();
        assert_eq!(*c, 1);
    }
}
