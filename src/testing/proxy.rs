//! A TCP proxy on loopback in front of etcd that can misbehave the way a
//! proxy or a NAT does: stop forwarding an established watch stream without
//! closing it (half-open), or cut every watch stream right after etcd
//! acknowledged it. It tells watch connections (`POST /v3/watch`) from the
//! others by their first bytes and records when each watch was opened and
//! on which key. Every connection and thread ends on drop.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// Bytes of a request kept to find the watched key.
const SNIFF_BYTES: usize = 8 * 1024;

/// One proxied connection.
struct Conn {
    client: TcpStream,
    server: TcpStream,
    /// A `POST /v3/watch` went through it.
    watch: AtomicBool,
    /// Forwarding stopped, both ends left open.
    blackholed: AtomicBool,
}

impl Conn {
    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

#[derive(Default)]
struct State {
    conns: Mutex<Vec<Arc<Conn>>>,
    /// (when, base64 key) of every watch request seen.
    watch_opens: Mutex<Vec<(Instant, String)>>,
    cut_watches: AtomicBool,
    stop: AtomicBool,
}

/// The proxy; `endpoint` is what agents are configured with.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    state: Arc<State>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<new port> to 127.0.0.1:`target_port`.
    pub fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        thread::spawn(move || accept_loop(&listener, target_port, &st));
        Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// Every watch stream open now stops forwarding in both directions but
    /// stays open, as behind a NAT that forgot the flow; new connections
    /// (the re-opened watch too) work.
    pub fn blackhole_watches(&self) -> usize {
        let conns = self.state.conns.lock().unwrap();
        let mut n = 0;
        for c in conns.iter().filter(|c| c.watch.load(Ordering::SeqCst)) {
            c.blackholed.store(true, Ordering::SeqCst);
            n += 1;
        }
        n
    }

    /// From now on, every watch stream is closed right after etcd's
    /// `created` acknowledgement went through.
    pub fn cut_watches_after_created(&self, on: bool) {
        self.state.cut_watches.store(on, Ordering::SeqCst);
    }

    /// (when, base64 key) of every watch request so far, in order.
    pub fn watch_opens(&self) -> Vec<(Instant, String)> {
        self.state.watch_opens.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        for c in self.state.conns.lock().unwrap().drain(..) {
            c.close();
        }
    }
}

fn accept_loop(listener: &TcpListener, target_port: u16, state: &Arc<State>) {
    while !state.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => continue,
        };
        let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
            continue;
        };
        let conn = (|| {
            client.set_nonblocking(false).ok()?;
            client.set_read_timeout(Some(TICK)).ok()?;
            server.set_read_timeout(Some(TICK)).ok()?;
            Some(Arc::new(Conn {
                client: client.try_clone().ok()?,
                server: server.try_clone().ok()?,
                watch: AtomicBool::new(false),
                blackholed: AtomicBool::new(false),
            }))
        })();
        let Some(conn) = conn else { continue };
        state.conns.lock().unwrap().push(Arc::clone(&conn));
        for upstream in [true, false] {
            let (conn, state) = (Arc::clone(&conn), Arc::clone(state));
            thread::spawn(move || pump(&conn, &state, upstream));
        }
    }
}

/// Copies one direction of `conn` (client to server when `upstream`),
/// applying the misbehaviours, until either side closes or the proxy stops.
fn pump(conn: &Conn, state: &State, upstream: bool) {
    let (mut from, mut to) = if upstream {
        (&conn.client, &conn.server)
    } else {
        (&conn.server, &conn.client)
    };
    let mut seen = Vec::new();
    let mut recorded = false;
    let mut buf = [0u8; 16 * 1024];
    loop {
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        if seen.len() < SNIFF_BYTES {
            seen.extend_from_slice(&buf[..n]);
        }
        if upstream && !recorded && seen.starts_with(b"POST /v3/watch") {
            if let Some(key) = json_string_after(&seen, "\"key\":\"") {
                conn.watch.store(true, Ordering::SeqCst);
                state
                    .watch_opens
                    .lock()
                    .unwrap()
                    .push((Instant::now(), key));
                recorded = true;
            }
        }
        if conn.blackholed.load(Ordering::SeqCst) {
            // Dropped on the floor, the connection left open.
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        let created =
            !upstream && conn.watch.load(Ordering::SeqCst) && contains(&seen, b"\"created\":true");
        if created && state.cut_watches.load(Ordering::SeqCst) {
            break;
        }
    }
    // A blackholed connection is closed only when the proxy stops.
    if !conn.blackholed.load(Ordering::SeqCst) || state.stop.load(Ordering::SeqCst) {
        conn.close();
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The JSON string value that follows `prefix` in `hay`, once complete.
fn json_string_after(hay: &[u8], prefix: &str) -> Option<String> {
    let start = hay
        .windows(prefix.len())
        .position(|w| w == prefix.as_bytes())?
        + prefix.len();
    let len = hay[start..].iter().position(|&b| b == b'"')?;
    Some(String::from_utf8_lossy(&hay[start..start + len]).into_owned())
}
