//! Watches: a stream per prefix on its own thread, resumed from the last
//! seen revision after errors with the shared backoff ([`crate::backoff`]),
//! and re-opened quietly from the same revision when it stays silent for
//! [`EtcdConfig::watch_idle_timeout`](crate::config::EtcdConfig) (a
//! half-open stream that a proxy or a NAT dropped without a word).

use std::io::{BufRead, BufReader};
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Map, json};

use crate::backoff;
use crate::error::{Error, Result};

use super::transport::*;
use super::txn::*;
use super::wire::*;
use super::*;

/// Something a watch saw; the callback returns `false` to stop the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was written.
    Put(KeyValue),
    /// A key was deleted (or its lease ended) at `revision`.
    Delete {
        /// The key.
        key: String,
        /// The revision of the delete.
        revision: i64,
    },
    /// History was compacted past the watch position: events may have been
    /// lost, re-read the state. The watch continues from `compact_revision`.
    Compacted {
        /// The oldest revision still available.
        compact_revision: i64,
    },
    /// The stream broke and was re-established from the last seen revision + 1.
    Reconnected,
    /// The stream broke or was cancelled; the watch will reconnect.
    Error(String),
}

impl Client {
    /// Watches every key under `prefix` from `start_revision` (0 = from now).
    ///
    /// The watch is established before this returns (so a write made after
    /// it is seen); a thread then calls `on_event` for each event until it
    /// returns `false`. On stream errors the thread reconnects from the last
    /// seen revision + 1 and reports [`WatchEvent::Error`] then
    /// [`WatchEvent::Reconnected`], after a jittered exponential backoff
    /// that only a stream that delivered something (or stayed up for
    /// [`WATCH_STABLE_AFTER_MILLIS`]) resets, so a stream that is cut right
    /// after it opened backs off too. A stream silent for the idle timeout
    /// (no event, no progress notification) is re-opened from the same
    /// revision without a report: a dropped stream is replaced, nothing is
    /// lost. An idle stream blocks in a read, so the thread notices `false`
    /// only at the next message or idle timeout.
    pub fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: i64,
        on_event: impl FnMut(WatchEvent) -> bool + Send + 'static,
    ) -> Result<JoinHandle<()>> {
        let key = prefix.as_bytes().to_vec();
        let opened = self
            .open_watch(&key, start_revision)
            .map_err(|(ep, f)| failure_to_error(&ep, "watch", f))?;
        let client = self.clone();
        thread::Builder::new()
            .name("etcd-watch".into())
            .spawn(move || client.watch_loop(key, start_revision, opened, on_event))
            .map_err(|e| {
                Error::etcd(
                    self.endpoint(),
                    "watch",
                    format!("cannot start thread: {e}"),
                )
            })
    }

    /// Opens a watch stream and reads its first message.
    pub(super) fn open_watch(
        &self,
        key: &[u8],
        start_revision: i64,
    ) -> std::result::Result<OpenedWatch, (String, Failure)> {
        let mut create = Map::new();
        create.insert("key".into(), b64(key));
        create.insert("range_end".into(), b64(&prefix_end(key)));
        if start_revision > 0 {
            create.insert("start_revision".into(), int(start_revision));
        }
        create.insert("progress_notify".into(), true.into());
        let body = json!({ "create_request": create });
        let (_, opened) = self.run("watch", |ep, token| {
            let resp = self.send(&self.inner.stream, ep, "/v3/watch", &body, token)?;
            let status = resp.status().as_u16();
            let (_, body) = resp.into_parts();
            let mut reader = BufReader::new(body.into_reader());
            if !(200..300).contains(&status) {
                let mut text = String::new();
                // Error replies end; a bounded read is enough to quote them.
                let _ = std::io::Read::read_to_string(
                    &mut std::io::Read::take(&mut reader, 64 * 1024),
                    &mut text,
                );
                return Err(parse_error_body(status, &text).classify());
            }
            let first = read_watch_message(&mut reader)?;
            if first.canceled && first.compact_revision == 0 {
                return Err(cancel_failure(&first.cancel_reason));
            }
            Ok(OpenedWatch {
                endpoint: ep.to_owned(),
                reader,
                first,
            })
        })?;
        Ok(opened)
    }

    pub(super) fn watch_loop(
        &self,
        key: Vec<u8>,
        start_revision: i64,
        opened: OpenedWatch,
        mut on_event: impl FnMut(WatchEvent) -> bool,
    ) {
        let mut next_rev = start_revision.max(0);
        // Failures since a stream last proved itself (delivered something or
        // stayed up): the backoff grows with it, and merely opening a stream
        // does not reset it.
        let mut failures: u32 = 0;
        // Whether the next successful open is reported as `Reconnected`.
        let mut report_open = false;
        let mut current = Some(opened);
        loop {
            let mut stream = match current.take() {
                Some(s) => s,
                None => match self.open_watch(&key, next_rev) {
                    Ok(s) => {
                        if report_open && !on_event(WatchEvent::Reconnected) {
                            return;
                        }
                        s
                    }
                    Err((ep, f)) => {
                        let err = failure_to_error(&ep, "watch", f);
                        log::warn!("{err}");
                        if !on_event(WatchEvent::Error(err.to_string())) {
                            return;
                        }
                        report_open = true;
                        failures = failures.saturating_add(1);
                        thread::sleep(reconnect_delay(failures));
                        continue;
                    }
                },
            };
            let opened_at = Instant::now();
            let mut delivered = false;
            let mut message = Ok(stream.first.clone());
            let outcome = loop {
                let msg = match message {
                    Ok(m) => m,
                    Err(StreamRead::Quiet) => break Flow::Quiet,
                    Err(StreamRead::Failed(f)) => {
                        break Flow::Reconnect(Some(
                            failure_to_error(&stream.endpoint, "watch", f).to_string(),
                        ));
                    }
                };
                // Anything but the creation acknowledgement (an event, a
                // progress notification) proves the stream carries data.
                delivered |= !msg.created;
                match handle_watch_message(msg, &mut next_rev, &mut on_event) {
                    Flow::Continue => {}
                    other => break other,
                }
                message = read_stream_message(&mut stream.reader);
            };
            // Not merely opened: a stream that delivered or stayed up long
            // enough ends the run of failures.
            if delivered || opened_at.elapsed() >= Duration::from_millis(WATCH_STABLE_AFTER_MILLIS)
            {
                failures = 0;
            }
            match outcome {
                Flow::Stop => return,
                Flow::Quiet => {
                    log::debug!(
                        "watch at {}: nothing for {} (no event, no progress notification); \
                         re-opening it from revision {next_rev}",
                        stream.endpoint,
                        humantime::format_duration(self.inner.watch_idle)
                    );
                    report_open = false;
                }
                Flow::Continue | Flow::Reconnect(None) => report_open = true,
                Flow::Reconnect(Some(detail)) => {
                    failures = failures.saturating_add(1);
                    let delay = reconnect_delay(failures);
                    log::warn!(
                        "{detail}; reconnecting from revision {next_rev} in {} ms",
                        delay.as_millis()
                    );
                    if !on_event(WatchEvent::Error(detail)) {
                        return;
                    }
                    report_open = true;
                    thread::sleep(delay);
                    // Another endpoint may be healthier: start the next try there.
                    let n = self.inner.endpoints.len();
                    if n > 1 {
                        let cur = self.inner.current.load(Ordering::Relaxed);
                        self.inner.current.store((cur + 1) % n, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// The delay before reconnect attempt `failures` (1-based): the shared
/// backoff from [`WATCH_BACKOFF_MIN_MILLIS`] doubling up to
/// [`WATCH_BACKOFF_MAX_MILLIS`], jittered (when a member fails, every
/// agent watching through it reconnects at once: spread them).
fn reconnect_delay(failures: u32) -> Duration {
    backoff::delay(
        failures,
        Duration::from_millis(WATCH_BACKOFF_MIN_MILLIS),
        Duration::from_millis(WATCH_BACKOFF_MAX_MILLIS),
        backoff::jitter(),
    )
}

pub(super) struct OpenedWatch {
    endpoint: String,
    reader: BufReader<ureq::BodyReader<'static>>,
    first: RawWatchResponse,
}

pub(super) enum Flow {
    Continue,
    Stop,
    /// Nothing arrived within the idle timeout: re-open quietly.
    Quiet,
    /// Re-open the stream; with a detail, after reporting it and a backoff.
    Reconnect(Option<String>),
}

/// Why reading the next message of a watch stream failed.
pub(super) enum StreamRead {
    /// Nothing arrived within the idle timeout (a half-open stream, or an
    /// idle one on a server whose progress notifications are rarer).
    Quiet,
    /// The stream broke or carried an error.
    Failed(Failure),
}

/// Reads the next `{"result":…}` / `{"error":…}` line of a stream.
pub(super) fn read_stream_message(
    reader: &mut impl BufRead,
) -> std::result::Result<RawWatchResponse, StreamRead> {
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => {
                return Err(StreamRead::Failed(Failure::Unavailable(
                    "watch stream ended".into(),
                )));
            }
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => return parse_stream_reply(&line).map_err(StreamRead::Failed),
            Err(e) if is_timeout(&e) => return Err(StreamRead::Quiet),
            Err(e) => {
                return Err(StreamRead::Failed(Failure::Unavailable(format!(
                    "reading the watch stream: {e}"
                ))));
            }
        }
    }
}

/// Reads the first message of a fresh stream: silence is a failure there.
pub(super) fn read_watch_message(
    reader: &mut impl BufRead,
) -> std::result::Result<RawWatchResponse, Failure> {
    read_stream_message(reader).map_err(|e| match e {
        StreamRead::Quiet => {
            Failure::Unavailable("no reply on the watch stream within its idle timeout".into())
        }
        StreamRead::Failed(f) => f,
    })
}

/// A read that ended because a deadline passed (ureq wraps its own timeout
/// errors in an `io::Error`).
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) || e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

/// Maps the `cancel_reason` of a watch cancelled at creation to a failure.
pub(super) fn cancel_failure(reason: &str) -> Failure {
    let code = if reason.contains("code = Unauthenticated") {
        Some(16)
    } else if reason.contains("code = PermissionDenied") {
        Some(7)
    } else if reason.contains("code = InvalidArgument") {
        Some(3)
    } else {
        None
    };
    let message = if reason.is_empty() {
        "watch canceled by the server".to_owned()
    } else {
        format!("watch canceled: {reason}")
    };
    ApiError {
        status: 0,
        code,
        message,
    }
    .classify()
}

/// Applies one watch message: reports events and advances `next_rev`.
pub(super) fn handle_watch_message(
    msg: RawWatchResponse,
    next_rev: &mut i64,
    on_event: &mut impl FnMut(WatchEvent) -> bool,
) -> Flow {
    if msg.canceled {
        if msg.compact_revision > 0 {
            *next_rev = msg.compact_revision;
            let ev = WatchEvent::Compacted {
                compact_revision: msg.compact_revision,
            };
            return if on_event(ev) {
                Flow::Reconnect(None)
            } else {
                Flow::Stop
            };
        }
        return Flow::Reconnect(Some(match msg.cancel_reason.as_str() {
            "" => "watch canceled by the server".to_owned(),
            reason => format!("watch canceled by the server: {reason}"),
        }));
    }
    if msg.created && *next_rev == 0 {
        // "From now" means from the revision after the one at creation.
        *next_rev = msg.header.revision + 1;
    }
    let had_events = !msg.events.is_empty();
    for ev in msg.events {
        let revision = ev.kv.mod_revision;
        let event = if ev.is_delete() {
            match decode_key(&ev.kv.key) {
                Ok(key) => WatchEvent::Delete { key, revision },
                Err(d) => WatchEvent::Error(format!("watch event: {d}")),
            }
        } else {
            match ev.kv.decode() {
                Ok(kv) => WatchEvent::Put(kv),
                Err(d) => WatchEvent::Error(format!("watch event: {d}")),
            }
        };
        *next_rev = (*next_rev).max(revision + 1);
        if !on_event(event) {
            return Flow::Stop;
        }
    }
    if !had_events && !msg.created && msg.header.revision > 0 {
        // A progress notification: everything up to this revision was sent.
        *next_rev = (*next_rev).max(msg.header.revision + 1);
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch_line(line: &str) -> RawWatchResponse {
        read_watch_message(&mut line.as_bytes()).unwrap()
    }

    fn collect(msgs: &[&str], next_rev: &mut i64) -> (Vec<WatchEvent>, Vec<&'static str>) {
        let mut events = Vec::new();
        let mut flows = Vec::new();
        for m in msgs {
            let flow = handle_watch_message(watch_line(m), next_rev, &mut |e| {
                events.push(e);
                true
            });
            flows.push(match flow {
                Flow::Continue => "continue",
                Flow::Stop => "stop",
                Flow::Quiet => "quiet",
                Flow::Reconnect(None) => "reconnect",
                Flow::Reconnect(Some(_)) => "reconnect-after-error",
            });
        }
        (events, flows)
    }

    #[test]
    fn watch_stream_lines_become_events_and_advance_the_revision() {
        let mut next = 0;
        let (events, flows) = collect(
            &[
                r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"18","raft_term":"2"},"created":true}}"#,
                r#"{"result":{"header":{"revision":"19"},"events":[{"kv":{"key":"bGVhc2VkL2tleQ==","create_revision":"19","mod_revision":"19","version":"1","value":"aG9zdC1h","lease":"2324035649314686015"}}]}}"#,
                r#"{"result":{"header":{"revision":"20"},"events":[{"type":"DELETE","kv":{"key":"bGVhc2VkL2tleQ==","mod_revision":"20"},"prev_kv":{"key":"bGVhc2VkL2tleQ==","create_revision":"19","mod_revision":"19","version":"1","value":"aG9zdC1h","lease":"2324035649314686015"}}]}}"#,
            ],
            &mut next,
        );
        assert_eq!(flows, ["continue"; 3]);
        assert_eq!(next, 21);
        assert_eq!(events.len(), 2);
        match &events[0] {
            WatchEvent::Put(kv) => {
                assert_eq!(kv.key, "leased/key");
                assert_eq!(kv.value, b"host-a");
                assert_eq!(kv.lease, 2324035649314686015);
            }
            other => panic!("expected a put, got {other:?}"),
        }
        assert_eq!(
            events[1],
            WatchEvent::Delete {
                key: "leased/key".into(),
                revision: 20
            }
        );
    }

    #[test]
    fn watch_created_from_now_resumes_after_the_creation_revision() {
        let mut next = 0;
        collect(
            &[r#"{"result":{"header":{"revision":"18"},"created":true}}"#],
            &mut next,
        );
        assert_eq!(next, 19);
        // A progress notification moves the resume point forward.
        collect(&[r#"{"result":{"header":{"revision":"58"}}}"#], &mut next);
        assert_eq!(next, 59);
        // A replay from an explicit revision keeps it.
        let mut next = 23;
        collect(
            &[r#"{"result":{"header":{"revision":"24"},"created":true}}"#],
            &mut next,
        );
        assert_eq!(next, 23);
    }

    #[test]
    fn watch_cancellations_are_reported() {
        let mut next = 5;
        let (events, flows) = collect(
            &[
                r#"{"result":{"header":{"revision":"25"},"created":true}}"#,
                r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","raft_term":"2"},"canceled":true,"compact_revision":"20"}}"#,
            ],
            &mut next,
        );
        assert_eq!(flows, ["continue", "reconnect"]);
        assert_eq!(
            events,
            vec![WatchEvent::Compacted {
                compact_revision: 20
            }]
        );
        assert_eq!(next, 20);
        let (_, flows) = collect(
            &[
                r#"{"result":{"header":{},"watch_id":"-1","created":true,"canceled":true,"cancel_reason":"rpc error: code = PermissionDenied desc = etcdserver: permission denied"}}"#,
            ],
            &mut next,
        );
        assert_eq!(flows, ["reconnect-after-error"]);
        assert!(matches!(
            cancel_failure(
                "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"
            ),
            Failure::Auth(_)
        ));
        assert!(matches!(
            cancel_failure(
                "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
            ),
            Failure::Api(ApiError { code: Some(7), .. })
        ));
    }

    #[test]
    fn a_silent_stream_is_quiet_not_failed() {
        /// A reader whose every read times out, as ureq reports it.
        struct Silent;
        impl std::io::Read for Silent {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(ureq::Error::Timeout(ureq::Timeout::PerRead).into_io())
            }
        }
        let mut reader = BufReader::new(Silent);
        assert!(matches!(
            read_stream_message(&mut reader),
            Err(StreamRead::Quiet)
        ));
        // On a fresh stream, silence is a failure (try another endpoint).
        assert!(matches!(
            read_watch_message(&mut reader),
            Err(Failure::Unavailable(d)) if d.contains("idle timeout")
        ));
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert!(is_timeout(&timed_out));
        assert!(!is_timeout(&std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        )));
    }

    #[test]
    fn watch_stream_errors_and_eof_are_failures() {
        let err = read_watch_message(
            &mut r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#
                .as_bytes(),
        );
        assert!(matches!(err, Err(Failure::Unavailable(_))));
        assert!(matches!(
            read_watch_message(&mut "\n\n".as_bytes()),
            Err(Failure::Unavailable(_))
        ));
        let multi = "\n{\"result\":{\"header\":{\"revision\":\"2\"},\"created\":true}}\n";
        assert!(read_watch_message(&mut multi.as_bytes()).unwrap().created);
    }

    #[test]
    fn stopping_the_callback_stops_the_watch() {
        let mut next = 0;
        let flow = handle_watch_message(
            watch_line(
                r#"{"result":{"header":{"revision":"3"},"events":[{"kv":{"key":"YQ==","mod_revision":"2"}},{"kv":{"key":"Yg==","mod_revision":"3"}}]}}"#,
            ),
            &mut next,
            &mut |_| false,
        );
        assert!(matches!(flow, Flow::Stop));
        assert_eq!(next, 3);
    }
}
