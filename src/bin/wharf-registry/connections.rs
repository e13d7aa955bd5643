//! Connections: a cap on how many are open, timeouts for clients that say nothing, and
//! an accept loop that backs off when the process runs out of file descriptors.
//!
//! Every connection is tracked with whether a request is in flight and when it last
//! was. At the cap, a new connection closes the connection idle the longest (a client
//! that holds thousands of idle keep-alive connections cannot lock others out); when
//! every connection is busy, the newcomer gets 503 and is closed. Closing is always
//! graceful: a request in flight finishes first.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The limits a connection lives under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Open connections at most.
    pub(crate) max_connections: usize,
    /// How long a connection may take to send a request's headers, counted from when it
    /// starts waiting for them: also how long an idle keep-alive connection stays open.
    pub(crate) idle_timeout: Duration,
    /// How long a request body may send nothing before the request ends, and a
    /// response may wait for its client to read before the connection is closed.
    pub(crate) body_timeout: Duration,
}

/// One open connection as the tracker sees it.
#[derive(Debug)]
struct Tracked {
    /// Requests in flight (started and not yet answered in full).
    busy: usize,
    /// When the last request started or finished, or the connection opened.
    last_active: Instant,
    /// While a response is being sent: when it last made progress (a frame taken).
    sending: Option<Instant>,
    /// Asks the connection to close once it has nothing in flight.
    close: Arc<Notify>,
}

/// Every open connection.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Tracked>>,
    /// Signalled when the last connection closes.
    drained: Notify,
}

/// What to do with a connection just accepted.
pub(crate) enum Admission {
    /// Serve it; the ticket unregisters it when dropped.
    Serve(Ticket),
    /// Every connection is busy: answer 503 and close.
    Refuse,
}

impl Connections {
    /// Registers a new connection if the cap allows, closing the longest-idle one when
    /// the cap is reached.
    pub(crate) fn admit(self: &Arc<Self>, max: usize) -> Admission {
        let mut open = self.open.lock().expect("connection table");
        if open.len() >= max && !Self::close_idlest(&mut open) {
            return Admission::Refuse;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        open.insert(
            id,
            Tracked {
                busy: 0,
                last_active: Instant::now(),
                sending: None,
                close: close.clone(),
            },
        );
        Admission::Serve(Ticket {
            connections: self.clone(),
            id,
            close,
        })
    }

    /// Asks the connection idle the longest to close; false if every one is busy. The
    /// closed one leaves the table now, so its slot is free at once.
    fn close_idlest(open: &mut BTreeMap<u64, Tracked>) -> bool {
        let idlest = open
            .iter()
            .filter(|(_, c)| c.busy == 0)
            .min_by_key(|(_, c)| c.last_active)
            .map(|(id, _)| *id);
        match idlest.and_then(|id| open.remove(&id)) {
            Some(closed) => {
                closed.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Frees one descriptor when `accept` ran out of them: closes the longest-idle
    /// connection, if any is idle.
    pub(crate) fn shed_one(&self) -> bool {
        Self::close_idlest(&mut self.open.lock().expect("connection table"))
    }

    /// Asks every connection to close after what it has in flight.
    pub(crate) fn close_all(&self) {
        for tracked in self.open.lock().expect("connection table").values() {
            tracked.close.notify_one();
        }
    }

    /// Waits until no connection is open.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.open.lock().expect("connection table").is_empty() {
                return;
            }
            notified.await;
        }
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut Tracked)) {
        if let Some(tracked) = self.open.lock().expect("connection table").get_mut(&id) {
            change(tracked);
        }
    }
}

/// A connection's place in the table, released on drop.
#[derive(Debug)]
pub(crate) struct Ticket {
    connections: Arc<Connections>,
    id: u64,
    close: Arc<Notify>,
}

impl Ticket {
    /// Resolves when the connection is asked to close.
    pub(crate) async fn closing(&self) {
        self.close.notified().await
    }

    /// A response starts going out: from now its sending must make progress.
    pub(crate) fn sending(&self) {
        self.connections
            .update(self.id, |t| t.sending = Some(Instant::now()));
    }

    /// The response being sent made progress (the client took a frame).
    pub(crate) fn progress(&self) {
        self.connections.update(self.id, |t| {
            if t.sending.is_some() {
                t.sending = Some(Instant::now());
            }
        });
    }

    /// Resolves once a response has been stuck for `limit`: the client stopped reading
    /// it. (Waiting on the handler, or on the request body, is not a stall here: the
    /// body has a timeout of its own.)
    pub(crate) async fn stalled(&self, limit: Duration) {
        let every = (limit / 4).max(Duration::from_millis(250));
        loop {
            tokio::time::sleep(every).await;
            let stuck = self
                .connections
                .open
                .lock()
                .expect("connection table")
                .get(&self.id)
                .and_then(|t| t.sending)
                .is_some_and(|at| at.elapsed() >= limit);
            if stuck {
                return;
            }
        }
    }

    /// Marks a request in flight until the returned guard drops.
    pub(crate) fn request(&self) -> InFlight {
        self.connections.update(self.id, |t| {
            t.busy += 1;
            t.last_active = Instant::now();
        });
        InFlight {
            connections: self.connections.clone(),
            id: self.id,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.connections.open.lock().expect("connection table");
        open.remove(&self.id);
        if open.is_empty() {
            self.connections.drained.notify_waiters();
        }
    }
}

/// A request in flight on a connection; kept by the response body until it is sent.
#[derive(Debug)]
pub(crate) struct InFlight {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.connections.update(self.id, |t| {
            t.busy = t.busy.saturating_sub(1);
            t.last_active = Instant::now();
            t.sending = None;
        });
    }
}

/// Answers a connection over the cap with 503 and closes it, without waiting on it
/// for long. The request's head is read first (clients take an answer that comes before
/// their request as a broken connection, not as a 503).
pub(crate) async fn refuse(mut stream: TcpStream) {
    let mut head = Vec::new();
    let mut piece = [0u8; 2048];
    let read_head = async {
        while head.len() < 16 << 10 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut piece).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&piece[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read_head).await;
    const BODY: &str = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"too many open connections: try again","detail":null}]}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    )
    .await;
}

/// Paces the accept loop after failures (out of descriptors, mostly) and keeps their
/// log to one line a second.
#[derive(Debug)]
pub(crate) struct AcceptBackoff {
    delay: Duration,
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Self {
        Self {
            delay: Self::FIRST,
            last_logged: None,
            suppressed: 0,
        }
    }

    /// After a successful accept.
    pub(crate) fn reset(&mut self) {
        self.delay = Self::FIRST;
    }

    /// After a failed accept: logs (rate-limited) and waits, longer each time in a row.
    pub(crate) async fn failed(&mut self, error: &std::io::Error) {
        let now = Instant::now();
        if self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= Self::LOG_EVERY)
        {
            match self.suppressed {
                0 => tracing::warn!("accept: {error}"),
                n => tracing::warn!("accept: {error} (and {n} more failures)"),
            }
            self.last_logged = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Self::MAX);
    }
}
