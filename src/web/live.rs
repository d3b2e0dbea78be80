//! The live console's plumbing: one `LISTEN` connection per server process, fanned out to its
//! open event streams, with the limits that keep a crowd of them bounded.
//!
//! A change flows: a commit anywhere (this process, another server, a `sluice worker`) fires a
//! trigger's `NOTIFY` → [`listen`] reads it and bumps the generation → every stream's task
//! hears it on the broadcast channel, asks whether its view concerns it, and if so reads the
//! view's data once per generation for all streams that share it ([`Hub::shared`]), renders
//! its own fragments (its user's buttons) and sends only those that changed.
//! What the streams show lives in `console::live`.

use std::any::Any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::Bytes;
use sqlx::PgPool;
use tokio::sync::{OnceCell, broadcast, mpsc, watch};
use uuid::Uuid;

use crate::db::changes::{self, Change};

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
            }),
        }
    }

    /// Starts this process's one listener (reconnecting, with a resync after every gap).
    pub fn start(&self, pool: PgPool) {
        tokio::spawn(listen(self.clone(), pool));
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
        let mut by_user = self.inner.by_user.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Announces a change to this process's streams (the listener does).
    fn announce(&self, change: Change) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        // No receiver is not an error: nobody is watching.
        let _ = self.inner.changes.send(change);
    }

    /// The value of `key` for the current generation, made once by whichever stream asks first
    /// and shared with every other that asks before the next change.
    pub async fn shared<T, E, F, Fut>(&self, key: String, make: F) -> Result<Arc<T>, E>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // Read before the data: what is read after this load is at least this fresh.
        let generation = self.inner.generation.load(Ordering::Acquire);
        let cell = {
            let mut shared = self.inner.shared.lock().unwrap_or_else(|e| e.into_inner());
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
        let value = cell
            .get_or_try_init(|| async {
                make()
                    .await
                    .map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>)
            })
            .await?
            .clone();
        Ok(value
            .downcast::<T>()
            .expect("one key always holds one type of value"))
    }
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
        let mut by_user = self
            .hub
            .inner
            .by_user
            .lock()
            .unwrap_or_else(|e| e.into_inner());
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

async fn listen(hub: Hub, pool: PgPool) {
    let mut closing = hub.inner.closing.subscribe();
    loop {
        if *closing.borrow() {
            return;
        }
        match changes::listen(&pool).await {
            Ok(mut listener) => {
                // Whatever happened while nobody listened: every stream refreshes.
                hub.announce(Change::Resync);
                loop {
                    tokio::select! {
                        _ = closing.changed() => return,
                        next = listener.try_recv() => match next {
                            Ok(Some(n)) => {
                                if let Some(change) = Change::parse(n.payload()) {
                                    hub.announce(change);
                                }
                            }
                            // The connection was lost; the next call reconnects, and what was
                            // said meanwhile is lost: resync.
                            Ok(None) => hub.announce(Change::Resync),
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
    let mut out = String::with_capacity(data.len() + 64);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    for line in data.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
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
        hub.announce(Change::Access);
        let c = hub.shared("k".into(), || make(made.clone())).await.unwrap();
        assert_eq!(*c, 1);
    }
}
