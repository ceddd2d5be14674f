//! Webhook notifications (SPEC §3 `notify`): a JSON POST to an incoming
//! webhook, in the body `notify.format` names ([`body`]): `{text, node,
//! event, at}` for Slack and Mattermost, a message with an Adaptive Card for
//! a Microsoft Teams Workflows webhook, or the operator's JSON template.
//!
//! Notifications must never slow down or fail a pass, so [`Notifier::send`]
//! only queues: one worker thread, fed by a bounded `mpsc` channel, delivers
//! with `notify.timeout_sec` as the budget of each request. A full queue
//! drops the notification with a warning; a failed delivery is logged and
//! forgotten. Logs name the webhook's host only: incoming-webhook URLs carry
//! their secret in the path.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Notify, NotifyFormat, expand_notify_template, redact_url_in};

/// Read and write buffer size of the webhook HTTP client: small, since a
/// webhook request and its reply are a few hundred bytes.
const WEBHOOK_IO_BUFFER_BYTES: usize = 16 * 1024;

/// How many notifications may wait for delivery before new ones are dropped.
pub const NOTIFY_QUEUE_LEN: usize = 32;

/// The event sent once when passes have been blocked for `blocked_after`.
pub const BLOCKED_TOO_LONG: &str = "blocked_too_long";

/// Sends webhook notifications on a background thread; inert when `notify`
/// is not configured.
#[derive(Debug)]
pub struct Notifier {
    inner: Option<Inner>,
}

#[derive(Debug)]
struct Inner {
    node: String,
    events: Vec<String>,
    format: NotifyFormat,
    blocked_after: Duration,
    /// `host[:port]` of the webhook, the only part of the URL that is logged.
    host: String,
    tx: SyncSender<Delivery>,
    /// Signalled by the worker when it has drained the queue and exits.
    done: Receiver<()>,
    /// Set by `shutdown`: deliveries are not started after this instant.
    deadline: Arc<Mutex<Option<Instant>>>,
    blocked: Mutex<Blocked>,
    /// Notifications queued or being delivered; the worker counts down.
    pending: Arc<Pending>,
    worker: JoinHandle<()>,
}

/// A count of undelivered notifications that [`Notifier::flush`] waits on.
#[derive(Debug, Default)]
struct Pending {
    count: Mutex<usize>,
    zero: Condvar,
}

impl Pending {
    fn add(&self) {
        *lock(&self.count) += 1;
    }

    fn done(&self) {
        let mut n = lock(&self.count);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.zero.notify_all();
        }
    }
}

/// The `blocked_too_long` bookkeeping.
#[derive(Debug, Default)]
struct Blocked {
    /// Since when passes have been blocked without interruption.
    since: Option<Instant>,
    /// Whether `blocked_too_long` has fired for this stretch.
    fired: bool,
}

/// One queued notification.
#[derive(Debug)]
struct Delivery {
    event: String,
    body: serde_json::Value,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Notifier {
    /// A notifier for `notify` (none: every call is a no-op) on node `node`.
    ///
    /// If the worker thread cannot be started, notifications are disabled
    /// with a warning rather than failing the daemon.
    pub fn new(notify: Option<&Notify>, node: &str) -> Notifier {
        let Some(notify) = notify else {
            return Notifier { inner: None };
        };
        let host = webhook_host(&notify.url);
        let (tx, rx) = mpsc::sync_channel(NOTIFY_QUEUE_LEN);
        let (done_tx, done) = mpsc::channel();
        let deadline = Arc::new(Mutex::new(None));
        let pending = Arc::new(Pending::default());
        let worker = Worker {
            url: notify.url.clone(),
            host: host.clone(),
            timeout: notify.timeout,
            deadline: Arc::clone(&deadline),
            pending: Arc::clone(&pending),
        };
        let spawned = std::thread::Builder::new()
            .name("notify".to_string())
            .spawn(move || {
                worker.run(rx);
                let _ = done_tx.send(());
            });
        let worker = match spawned {
            Ok(w) => w,
            Err(e) => {
                log::warn!("notify: cannot start the delivery thread, notifications are off: {e}");
                return Notifier { inner: None };
            }
        };
        Notifier {
            inner: Some(Inner {
                node: node.to_string(),
                events: notify.events.clone(),
                format: notify.format.clone(),
                blocked_after: notify.blocked_after,
                host,
                tx,
                done,
                deadline,
                blocked: Mutex::new(Blocked::default()),
                pending,
                worker,
            }),
        }
    }

    /// Queues `event` with message `text` if the event is subscribed; never
    /// blocks and never fails (problems are logged).
    pub fn send(&self, event: &str, text: &str) {
        self.send_with(event, text, &[]);
    }

    /// As [`Notifier::send`], with placeholder values for a template
    /// (`RC_REASON`, `RC_DOWN_SEC`, …) besides the node, event, text and time.
    pub fn send_with(&self, event: &str, text: &str, vars: &[(&str, String)]) {
        let Some(inner) = &self.inner else { return };
        if !inner.events.iter().any(|e| e == event) {
            log::debug!("notify: {event} is not in notify.events, not sent");
            return;
        }
        let message = Message {
            node: &inner.node,
            event,
            text,
            at: &crate::time::timestamp_now(),
            vars,
        };
        let body = match body(&inner.format, &message) {
            Ok(b) => b,
            Err(e) => {
                log::warn!("notify: {event} not sent: {e}");
                return;
            }
        };
        let delivery = Delivery {
            event: event.to_string(),
            body,
        };
        inner.pending.add();
        match inner.tx.try_send(delivery) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => log::warn!(
                "notify: {NOTIFY_QUEUE_LEN} notifications already waiting for {}, dropping {event}",
                inner.host
            ),
            Err(TrySendError::Disconnected(_)) => log::warn!(
                "notify: the delivery thread is gone, dropping {event} for {}",
                inner.host
            ),
        }
        inner.pending.done();
    }

    /// Waits up to `grace` for every queued notification to be delivered
    /// (or to fail); used before the reboot command takes the host down.
    pub fn flush(&self, grace: Duration) {
        let Some(inner) = &self.inner else { return };
        let count = lock(&inner.pending.count);
        let (count, timeout) = inner
            .pending
            .zero
            .wait_timeout_while(count, grace, |n| *n > 0)
            .unwrap_or_else(|e| e.into_inner());
        if timeout.timed_out() {
            log::warn!(
                "notify: {} notification(s) for {} still undelivered after {}",
                *count,
                inner.host,
                crate::time::human_duration(grace)
            );
        }
    }

    /// Records how a pass ended (`Some(reason)` when blocked) and sends
    /// `blocked_too_long` once when passes have been blocked without a break
    /// for `blocked_after`; an unblocked pass starts the count again.
    pub fn note_blocked(&self, reason: Option<&str>, now: Instant) {
        let Some(inner) = &self.inner else { return };
        let mut blocked = lock(&inner.blocked);
        let Some(reason) = reason else {
            *blocked = Blocked::default();
            return;
        };
        let since = *blocked.since.get_or_insert(now);
        let for_how_long = now.saturating_duration_since(since);
        if blocked.fired || for_how_long < inner.blocked_after {
            return;
        }
        blocked.fired = true;
        drop(blocked);
        let shown = crate::time::human_duration(Duration::from_secs(for_how_long.as_secs()));
        self.send(
            BLOCKED_TOO_LONG,
            &format!(
                "rebootctl on {}: reboots blocked for {shown} (last reason: {reason})",
                inner.node
            ),
        );
    }

    /// Stops accepting notifications, delivers what is queued for at most
    /// `grace`, then returns; what is left is dropped.
    pub fn shutdown(self, grace: Duration) {
        let Some(inner) = self.inner else { return };
        let deadline = Instant::now() + grace;
        *lock(&inner.deadline) = Some(deadline);
        // Closing the channel ends the worker's loop once the queue is empty.
        drop(inner.tx);
        match inner.done.recv_timeout(grace) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = inner.worker.join();
            }
            Err(RecvTimeoutError::Timeout) => log::warn!(
                "notify: delivery to {} still running after {}, not waiting longer",
                inner.host,
                crate::time::human_duration(grace)
            ),
        }
    }
}

/// One notification before it becomes a body.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The node it is about.
    pub node: &'a str,
    /// The event name.
    pub event: &'a str,
    /// The human message.
    pub text: &'a str,
    /// When (RFC 3339).
    pub at: &'a str,
    /// Further placeholder values (`RC_REASON`, `RC_DOWN_SEC`, …).
    pub vars: &'a [(&'a str, String)],
}

/// A title per event, for the Teams card.
fn title(event: &str) -> &'static str {
    match event {
        "reboot_started" => "Rebooting",
        "reboot_completed" => "Reboot completed",
        "reboot_failed" => "Reboot failed",
        "blocked_too_long" => "Reboots blocked too long",
        "reboot_ineffective" => "Reboot did not help",
        "node_back" => "Node back",
        _ => "rebootctl",
    }
}

/// The JSON body of `message` in `format`; an error when a template does
/// not expand to JSON (validation makes that rare: a value cannot break it).
pub fn body(format: &NotifyFormat, m: &Message<'_>) -> Result<serde_json::Value, String> {
    match format {
        NotifyFormat::Slack => Ok(serde_json::json!({
            "text": m.text,
            "node": m.node,
            "event": m.event,
            "at": m.at,
        })),
        // A Workflows webhook ("Post to a channel when a webhook request is
        // received") takes a message whose attachment is an Adaptive Card.
        NotifyFormat::Teams => {
            let mut facts = vec![
                serde_json::json!({"title": "Node", "value": m.node}),
                serde_json::json!({"title": "Event", "value": m.event}),
                serde_json::json!({"title": "At", "value": m.at}),
            ];
            if let Some((_, secs)) = m.vars.iter().find(|(k, _)| *k == "RC_DOWN_SEC") {
                let down = secs
                    .parse()
                    .map(|s| crate::time::human_duration(Duration::from_secs(s)))
                    .unwrap_or_else(|_| secs.clone());
                facts.push(serde_json::json!({"title": "Down for", "value": down}));
            }
            Ok(serde_json::json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {
                                "type": "TextBlock",
                                "text": format!("{}: {}", title(m.event), m.node),
                                "weight": "Bolder",
                                "size": "Medium",
                                "wrap": true,
                            },
                            {"type": "TextBlock", "text": m.text, "wrap": true},
                            {"type": "FactSet", "facts": facts},
                        ],
                    },
                }],
            }))
        }
        NotifyFormat::Template(t) => {
            let mut vars: Vec<(String, String)> = vec![
                ("RC_NODE_NAME".into(), m.node.to_string()),
                ("RC_EVENT".into(), m.event.to_string()),
                ("RC_TEXT".into(), m.text.to_string()),
                ("RC_AT".into(), m.at.to_string()),
            ];
            vars.extend(m.vars.iter().map(|(k, v)| (k.to_string(), v.clone())));
            serde_json::from_str(&expand_notify_template(t, &vars))
                .map_err(|e| format!("notify.template is not JSON once expanded: {e}"))
        }
    }
}

/// The delivery thread's state.
struct Worker {
    url: String,
    host: String,
    timeout: Duration,
    deadline: Arc<Mutex<Option<Instant>>>,
    pending: Arc<Pending>,
}

impl Worker {
    /// Delivers queued notifications until the channel closes.
    fn run(self, rx: Receiver<Delivery>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Non-2xx is reported by us, with the host only.
            .http_status_as_error(false)
            .user_agent(concat!("rebootctl/", env!("CARGO_PKG_VERSION")))
            .input_buffer_size(WEBHOOK_IO_BUFFER_BYTES)
            .output_buffer_size(WEBHOOK_IO_BUFFER_BYTES)
            .build()
            .into();
        let mut dropped = 0usize;
        for delivery in rx {
            let budget = match *lock(&self.deadline) {
                None => self.timeout,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        dropped += 1;
                        self.pending.done();
                        continue;
                    }
                    left.min(self.timeout)
                }
            };
            self.deliver(&agent, &delivery, budget);
            self.pending.done();
        }
        if dropped > 0 {
            log::warn!(
                "notify: shutdown grace over, {dropped} notification(s) for {} not sent",
                self.host
            );
        }
    }

    /// One POST with `budget` as its global timeout; failures are logged.
    fn deliver(&self, agent: &ureq::Agent, delivery: &Delivery, budget: Duration) {
        let result = agent
            .post(&self.url)
            .config()
            .timeout_global(Some(budget))
            .build()
            .send_json(&delivery.body);
        let event = &delivery.event;
        match result {
            Ok(response) if response.status().is_success() => {
                log::debug!("notify: {event} delivered to {}", self.host);
            }
            Ok(response) => log::warn!(
                "notify: {event} to {} failed: HTTP {}",
                self.host,
                response.status()
            ),
            Err(e) => log::warn!(
                "notify: {event} to {} failed: {}",
                self.host,
                redact_url_in(&e.to_string(), &self.url)
            ),
        }
    }
}

/// The `host[:port]` of a webhook URL, without scheme, credentials or path.
fn webhook_host(url: &str) -> String {
    match url.parse::<ureq::http::Uri>() {
        Ok(uri) => match (uri.host(), uri.port_u16()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "the webhook (URL has no host)".to_string(),
        },
        Err(_) => "the webhook (unparsable URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::Sender;

    const EVENTS: [&str; 3] = ["reboot_started", "reboot_completed", BLOCKED_TOO_LONG];

    /// A webhook receiver on 127.0.0.1:0; every request's (path, JSON body)
    /// arrives on the channel. With `answer` false it reads requests and
    /// never answers them.
    struct WebhookReceiver {
        server: Arc<tiny_http::Server>,
        url: String,
        got: mpsc::Receiver<(String, serde_json::Value)>,
        thread: Option<JoinHandle<()>>,
    }

    impl WebhookReceiver {
        fn start(answer: bool) -> WebhookReceiver {
            let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind receiver"));
            let port = server.server_addr().to_ip().expect("an IP listener").port();
            let (tx, got) = mpsc::channel();
            let thread = {
                let server = Arc::clone(&server);
                std::thread::spawn(move || serve(&server, answer, &tx))
            };
            WebhookReceiver {
                server,
                url: format!("http://127.0.0.1:{port}/hooks/s3cr3t-token"),
                got,
                thread: Some(thread),
            }
        }

        fn next(&self) -> (String, serde_json::Value) {
            self.got
                .recv_timeout(Duration::from_secs(10))
                .expect("a notification within 10 s")
        }
    }

    impl Drop for WebhookReceiver {
        fn drop(&mut self) {
            self.server.unblock();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn serve(server: &tiny_http::Server, answer: bool, tx: &Sender<(String, serde_json::Value)>) {
        let mut unanswered = Vec::new();
        while let Ok(mut rq) = server.recv() {
            let mut body = String::new();
            let _ = rq.as_reader().read_to_string(&mut body);
            let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
            let _ = tx.send((rq.url().to_string(), json));
            if answer {
                let _ = rq.respond(tiny_http::Response::from_string("ok"));
            } else {
                // Keep the connection open and silent.
                unanswered.push(rq);
            }
        }
    }

    fn config(url: &str, timeout: Duration, blocked_after: Duration) -> Notify {
        Notify {
            url: url.to_string(),
            events: EVENTS.iter().map(|s| s.to_string()).collect(),
            blocked_after,
            timeout,
            format: NotifyFormat::Slack,
        }
    }

    #[test]
    fn delivers_json_with_the_four_fields() {
        let rx = WebhookReceiver::start(true);
        let cfg = config(&rx.url, Duration::from_secs(5), Duration::from_secs(3600));
        let n = Notifier::new(Some(&cfg), "web-1");
        n.send("reboot_started", "web-1 is rebooting");
        let (path, json) = rx.next();
        assert_eq!(path, "/hooks/s3cr3t-token");
        let obj = json.as_object().expect("a JSON object");
        assert_eq!(obj.len(), 4, "{json}");
        assert_eq!(json["text"], "web-1 is rebooting");
        assert_eq!(json["node"], "web-1");
        assert_eq!(json["event"], "reboot_started");
        let at = json["at"].as_str().expect("at is a string");
        let at: jiff::Timestamp = at.parse().expect("at is RFC 3339");
        let age = jiff::Timestamp::now().duration_since(at);
        assert!(age.as_secs() < 60, "at is now-ish: {at}");
        n.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn teams_gets_an_adaptive_card() {
        let rx = WebhookReceiver::start(true);
        let mut cfg = config(&rx.url, Duration::from_secs(5), Duration::from_secs(3600));
        cfg.format = NotifyFormat::Teams;
        cfg.events.push("node_back".into());
        let n = Notifier::new(Some(&cfg), "web-1");
        n.send_with(
            "node_back",
            "web-1 is back after 3m 12s down: healthy, slot released",
            &[("RC_DOWN_SEC", "192".into())],
        );
        let (_, json) = rx.next();
        assert_eq!(json["type"], "message", "{json:#}");
        let att = &json["attachments"][0];
        assert_eq!(
            att["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &att["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(card["body"][0]["text"], "Node back: web-1");
        assert_eq!(
            card["body"][1]["text"],
            "web-1 is back after 3m 12s down: healthy, slot released"
        );
        let facts = card["body"][2]["facts"].as_array().expect("facts");
        let fact = |t: &str| {
            facts
                .iter()
                .find(|f| f["title"] == t)
                .map(|f| f["value"].clone())
        };
        assert_eq!(fact("Node"), Some("web-1".into()));
        assert_eq!(fact("Event"), Some("node_back".into()));
        assert_eq!(fact("Down for"), Some("3m 12s".into()));
        n.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn a_template_gets_its_placeholders_json_escaped() {
        let rx = WebhookReceiver::start(true);
        let mut cfg = config(&rx.url, Duration::from_secs(5), Duration::from_secs(3600));
        cfg.format = NotifyFormat::Template(
            r#"{"msg": "[${RC_EVENT}] ${RC_TEXT}", "host": "${RC_NODE_NAME}", "why": "${RC_REASON}", "unset": "${RC_DOWN_SEC}", "n": 1}"#
                .into(),
        );
        let n = Notifier::new(Some(&cfg), "web-1");
        n.send_with(
            "reboot_started",
            "web-1 is rebooting \"now\"\nline two\\",
            &[("RC_REASON", "kernel,marker".into())],
        );
        let (_, json) = rx.next();
        assert_eq!(
            json,
            serde_json::json!({
                "msg": "[reboot_started] web-1 is rebooting \"now\"\nline two\\",
                "host": "web-1",
                "why": "kernel,marker",
                "unset": "",
                "n": 1,
            })
        );
        n.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn flush_waits_for_delivery_and_gives_up_at_its_grace() {
        let rx = WebhookReceiver::start(true);
        let cfg = config(&rx.url, Duration::from_secs(5), Duration::from_secs(3600));
        let n = Notifier::new(Some(&cfg), "web-1");
        n.send("reboot_started", "going down");
        n.flush(Duration::from_secs(5));
        // Delivered before flush returned: already on the channel.
        assert_eq!(
            rx.got.try_recv().expect("delivered").1["event"],
            "reboot_started"
        );
        n.shutdown(Duration::from_secs(1));

        let silent = WebhookReceiver::start(false);
        let cfg = config(
            &silent.url,
            Duration::from_secs(30),
            Duration::from_secs(3600),
        );
        let n = Notifier::new(Some(&cfg), "web-1");
        n.send("reboot_started", "going down");
        let started = Instant::now();
        n.flush(Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(5));
        n.shutdown(Duration::from_millis(100));
    }

    #[test]
    fn unsubscribed_events_are_not_sent() {
        let rx = WebhookReceiver::start(true);
        let cfg = config(&rx.url, Duration::from_secs(5), Duration::from_secs(3600));
        let n = Notifier::new(Some(&cfg), "web-1");
        n.send("reboot_failed", "not subscribed");
        n.send("reboot_completed", "subscribed");
        // One worker delivers in order, so the first arrival decides.
        assert_eq!(rx.next().1["event"], "reboot_completed");
        n.shutdown(Duration::from_secs(5));
        assert!(rx.got.try_recv().is_err(), "nothing else was sent");
    }

    #[test]
    fn unconfigured_notifier_is_inert() {
        let n = Notifier::new(None, "web-1");
        n.send("reboot_started", "x");
        n.note_blocked(Some("window"), Instant::now());
        n.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn a_silent_receiver_neither_delays_send_nor_outlives_the_timeout() {
        let rx = WebhookReceiver::start(false);
        let timeout = Duration::from_millis(500);
        let cfg = config(&rx.url, timeout, Duration::from_secs(3600));
        let n = Notifier::new(Some(&cfg), "web-1");
        let started = Instant::now();
        n.send("reboot_started", "into the void");
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "send took {:?}",
            started.elapsed()
        );
        // The receiver has the request and sits on it.
        assert_eq!(rx.next().1["event"], "reboot_started");
        // A generous grace: shutdown returns when the worker is done, which
        // is when the delivery gave up after `timeout`, not after `grace`.
        n.shutdown(Duration::from_secs(30));
        let took = started.elapsed();
        assert!(took >= timeout, "gave up too early: {took:?}");
        assert!(took < Duration::from_secs(10), "did not give up: {took:?}");
    }

    #[test]
    fn shutdown_waits_at_most_grace() {
        let rx = WebhookReceiver::start(false);
        let cfg = config(&rx.url, Duration::from_secs(60), Duration::from_secs(3600));
        let n = Notifier::new(Some(&cfg), "web-1");
        n.send("reboot_started", "stuck");
        n.send("reboot_completed", "queued behind it");
        assert_eq!(rx.next().1["event"], "reboot_started");
        let started = Instant::now();
        n.shutdown(Duration::from_millis(300));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    }

    #[test]
    fn blocked_too_long_fires_once_per_blocked_stretch() {
        let rx = WebhookReceiver::start(true);
        let hour = Duration::from_secs(3600);
        let cfg = config(&rx.url, Duration::from_secs(5), hour);
        let n = Notifier::new(Some(&cfg), "web-1");
        let t0 = Instant::now();
        let min = Duration::from_secs(60);

        n.note_blocked(Some("window"), t0);
        n.note_blocked(Some("window"), t0 + 30 * min);
        n.note_blocked(Some("lock"), t0 + 59 * min);
        n.note_blocked(Some("lock"), t0 + 61 * min); // fires
        n.note_blocked(Some("lock"), t0 + 90 * min);
        n.note_blocked(Some("window"), t0 + 200 * min);
        n.send("reboot_completed", "marker");

        let (_, first) = rx.next();
        assert_eq!(first["event"], BLOCKED_TOO_LONG);
        let text = first["text"].as_str().expect("text");
        assert!(text.contains("1h 1m"), "{text}");
        assert!(text.contains("lock"), "{text}");
        assert_eq!(rx.next().1["event"], "reboot_completed", "fired only once");

        // An unblocked pass starts a new stretch, which may fire again.
        n.note_blocked(None, t0 + 201 * min);
        n.note_blocked(Some("health"), t0 + 202 * min);
        n.note_blocked(Some("health"), t0 + 261 * min);
        n.send("reboot_completed", "marker");
        assert_eq!(rx.next().1["event"], "reboot_completed", "not yet an hour");
        n.note_blocked(Some("health"), t0 + 262 * min); // fires
        n.note_blocked(Some("health"), t0 + 300 * min);
        n.send("reboot_completed", "marker");
        assert_eq!(rx.next().1["event"], BLOCKED_TOO_LONG);
        assert_eq!(rx.next().1["event"], "reboot_completed");
        n.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn the_full_queue_drops_instead_of_blocking() {
        let rx = WebhookReceiver::start(false);
        let cfg = config(&rx.url, Duration::from_secs(60), Duration::from_secs(3600));
        let n = Notifier::new(Some(&cfg), "web-1");
        let started = Instant::now();
        for _ in 0..NOTIFY_QUEUE_LEN * 3 {
            n.send("reboot_started", "flood");
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "send blocked: {:?}",
            started.elapsed()
        );
        n.shutdown(Duration::from_millis(200));
    }

    #[test]
    fn logs_name_the_host_not_the_secret() {
        let url = "https://user:pw@chat.example:8443/hooks/s3cr3t?token=x";
        assert_eq!(webhook_host(url), "chat.example:8443");
        assert_eq!(
            webhook_host("https://hooks.slack.com/services/T0/B0/xyz"),
            "hooks.slack.com"
        );
        for msg in [
            format!("bad uri: {url}"),
            "request to /hooks/s3cr3t?token=x failed".to_string(),
            "request to /hooks/s3cr3t failed".to_string(),
            "auth user:pw rejected".to_string(),
        ] {
            let shown = redact_url_in(&msg, url);
            assert!(
                !shown.contains("s3cr3t") && !shown.contains("user:pw"),
                "{shown}"
            );
        }
    }
}
