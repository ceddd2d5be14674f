//! `rebootctl fleetlock serve`: a FleetLock server over rebootctl's own
//! lock, so Fedora CoreOS nodes (Zincati), other FleetLock clients and
//! rebootctl agents share one limit, one pause, the cooldown and the
//! cluster policies.
//!
//! Stateless: every answer is decided against etcd at the time of the
//! request, so two servers behind one load balancer are safe, a restart
//! loses nothing, and an etcd that does not answer means `503`, never a
//! grant. A `pre-reboot` is granted when the cluster is not paused, the
//! group's maintenance windows are open, no cooldown runs and the cluster
//! policies allow one more host down; the slot is then taken by the same
//! [`Lock::acquire`] transaction the agents use. The holder record names the
//! client (`kind: fleetlock`, id, group, since) and lives on a lease of
//! `fleetlock.max_hold_sec`, renewed by each repeated `pre-reboot` of the
//! same id and deleted by its `steady-state`; a client that never comes
//! back is freed when the lease ends, and reported (log, metric,
//! notification `fleetlock_hold_expiring`) `hold_warning_sec` before.
//!
//! One thread decides, in a `recv_timeout` loop that also runs the
//! periodic sweep (holder gauges, expiring holds). tiny_http reads bodies up
//! to 1024 bytes on its own connection threads before the request reaches
//! that loop; a request announcing a larger (or unknown-length) body is
//! answered unread on a short-lived thread, where tiny_http discards the
//! body, so a slow client never stalls the decisions. Plain HTTP only:
//! tiny_http 0.12 serves TLS only through OpenSSL or a second, older rustls
//! (new crates), so TLS is terminated in front (see rebootctl(8)).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tiny_http::{Header, Method, Request, Response};

use crate::cluster::Cluster;
use crate::cluster::lock::{Acquire, Lock, Slot, SlotPhase, SlotValue};
use crate::cluster::policy::{PolicyVerdict, policy_allows};
use crate::config::{self, Config, FleetLockGroup, FleetLockServer};
use crate::error::{Error, Result};
use crate::exposition::CONTENT_TYPE;
use crate::fleetlock::client::basic_authorization;
use crate::fleetlock::metrics::{GroupGauge, KIND_OK, Metrics, OPERATION_NONE};
use crate::fleetlock::protocol::{self, ClientParams, Kind, MAX_BODY_BYTES, Operation, Refusal};
use crate::host::notify::Notifier;
use crate::time::{human_duration, secs_between};
use crate::window::WindowVerdict;

/// The notification sent when a FleetLock hold is about to expire.
pub const HOLD_EXPIRING_EVENT: &str = "fleetlock_hold_expiring";
/// Longest pause between two sweeps (holder gauges, expiring holds).
const MAX_SWEEP_INTERVAL_SECS: u64 = 30;
/// How many oversized requests may be answered on their own threads at
/// once; more are answered on the decision thread.
const MAX_DISCARD_THREADS: usize = 8;
/// How long the loop pauses after an accept error, so a persistent one
/// (out of file descriptors) cannot spin a core.
const ACCEPT_ERROR_PAUSE_MILLIS: u64 = 100;

/// Stop and reload requests from another thread (the signal thread).
#[derive(Debug, Default)]
struct Control {
    stop: AtomicBool,
    reload: AtomicBool,
}

/// Asks a running [`Server`] to stop or to re-read its configuration.
#[derive(Clone)]
pub struct Handle {
    http: Arc<tiny_http::Server>,
    control: Arc<Control>,
}

impl Handle {
    /// Stops the server's loop (it returns from [`Server::run`]).
    pub fn stop(&self) {
        self.control.stop.store(true, Ordering::SeqCst);
        self.http.unblock();
    }

    /// Re-reads the configuration before the next request.
    pub fn reload(&self) {
        self.control.reload.store(true, Ordering::SeqCst);
        self.http.unblock();
    }
}

/// A bound FleetLock server.
pub struct Server {
    http: Arc<tiny_http::Server>,
    local_addr: SocketAddr,
    control: Arc<Control>,
    state: State,
}

/// Everything the decisions need; replaced whole on reload.
struct State {
    cfg: Config,
    section: FleetLockServer,
    cluster: Cluster,
    /// group → the expected `Authorization` value.
    auth: BTreeMap<String, String>,
    metrics: Metrics,
    notifier: Notifier,
    /// Holdings (key, create revision) already reported as expiring.
    warned: BTreeSet<(String, i64)>,
    /// Oversized requests being answered on their own threads.
    discarding: Arc<AtomicUsize>,
}

impl Server {
    /// Validates that `cfg` has a `fleetlock` section and etcd, reads the
    /// groups' password files and binds the listen address. Contacts
    /// nothing yet.
    pub fn bind(cfg: Config) -> Result<Server> {
        let state = State::new(cfg)?;
        let listen = state.section.listen;
        // Bind with std first: tiny_http's boxed error would lose the io
        // kind, and "address in use" is the one an operator will meet.
        let listener = TcpListener::bind(listen)
            .map_err(|e| Error::Runtime(format!("fleetlock: cannot listen on {listen}: {e}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::Runtime(format!("fleetlock: cannot listen on {listen}: {e}")))?;
        let http = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| Error::Runtime(format!("fleetlock: cannot listen on {listen}: {e}")))?;
        Ok(Server {
            http: Arc::new(http),
            local_addr,
            control: Arc::new(Control::default()),
            state,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to stop or reload the server from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            http: Arc::clone(&self.http),
            control: Arc::clone(&self.control),
        }
    }

    /// Serves until [`Handle::stop`].
    pub fn run(mut self) -> Result<()> {
        log::info!(
            event = "started";
            "rebootctl {} fleetlock server on http://{}/ (groups: {}); max hold {}",
            env!("CARGO_PKG_VERSION"),
            self.local_addr,
            self.state
                .section
                .groups
                .iter()
                .map(|g| format!("{} → {} ({} slot{})", g.name, g.lock_key, g.slots, if g.slots == 1 { "" } else { "s" }))
                .collect::<Vec<_>>()
                .join(", "),
            human_duration(self.state.section.max_hold)
        );
        let mut next_sweep = Instant::now();
        loop {
            if self.control.stop.swap(false, Ordering::SeqCst) {
                break;
            }
            if self.control.reload.swap(false, Ordering::SeqCst) {
                self.reload();
            }
            let now = Instant::now();
            if now >= next_sweep {
                self.state.sweep();
                next_sweep = now + self.state.sweep_interval();
            }
            match self
                .http
                .recv_timeout(next_sweep.saturating_duration_since(now))
            {
                Ok(Some(request)) => self.state.handle(request),
                // A timeout, or unblocked by the handle.
                Ok(None) => {}
                Err(e) => {
                    log::debug!("fleetlock: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MILLIS));
                }
            }
        }
        log::info!(event = "stopped"; "fleetlock server stopped");
        let grace = self
            .state
            .cfg
            .notify
            .as_ref()
            .map(|n| n.timeout)
            .unwrap_or_default();
        self.state.notifier.shutdown(grace);
        Ok(())
    }

    /// SIGHUP: a valid new file replaces the groups, windows, auth, holds
    /// and policies; `fleetlock.listen` and `etcd_*` need a restart.
    fn reload(&mut self) {
        let loaded = config::load(&self.state.cfg.source).and_then(State::new);
        match loaded {
            Ok(mut new) => {
                let mut ignored = Vec::new();
                if new.cfg.etcd != self.state.cfg.etcd {
                    ignored.push("etcd_*");
                    new.cluster = self.state.cluster.clone();
                }
                if new.section.listen != self.state.section.listen {
                    ignored.push("fleetlock.listen");
                }
                new.warned = std::mem::take(&mut self.state.warned);
                if ignored.is_empty() {
                    log::info!(event = "reload"; "configuration reloaded");
                } else {
                    log::warn!(
                        event = "reload";
                        "configuration reloaded; changes to {} need a restart",
                        ignored.join(", ")
                    );
                }
                let old = std::mem::replace(&mut self.state, new);
                old.notifier.shutdown(Duration::ZERO);
            }
            Err(e) => log::error!(
                event = "reload_rejected";
                "reload rejected, keeping the running configuration: {e}"
            ),
        }
    }
}

/// What a request came to: the answer and how to count it.
struct Answer {
    operation: &'static str,
    result: std::result::Result<String, Refusal>,
}

impl State {
    fn new(cfg: Config) -> Result<State> {
        let section = cfg.fleetlock.clone().ok_or_else(|| {
            Error::Runtime(format!(
                "{} has no fleetlock section: nothing to serve",
                cfg.source.display()
            ))
        })?;
        let cluster = Cluster::connect(&cfg)?;
        let mut auth = BTreeMap::new();
        for g in &section.groups {
            if let Some(a) = &g.auth {
                auth.insert(
                    g.name.clone(),
                    basic_authorization(&a.username, &a.password_file)?,
                );
            }
        }
        let metrics = Metrics::new(
            &section
                .groups
                .iter()
                .map(|g| (g.name.clone(), g.slots))
                .collect::<Vec<_>>(),
        );
        let notifier = Notifier::new(
            cfg.notify.as_ref(),
            &format!("{} (fleetlock server)", cfg.node_name),
        );
        Ok(State {
            cfg,
            section,
            cluster,
            auth,
            metrics,
            notifier,
            warned: BTreeSet::new(),
            discarding: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// A quarter of the warning margin, between 1 s and 30 s: an expiring
    /// hold is reported well before it ends.
    fn sweep_interval(&self) -> Duration {
        (self.section.hold_warning / 4).clamp(
            Duration::from_secs(1),
            Duration::from_secs(MAX_SWEEP_INTERVAL_SECS),
        )
    }

    fn group(&self, name: &str) -> Option<&FleetLockGroup> {
        self.section.groups.iter().find(|g| g.name == name)
    }

    fn lock(&self, group: &FleetLockGroup) -> Lock {
        self.cluster.lock_for(&group.lock_key, group.slots)
    }

    /// An etcd failure: logged in full, answered as `unavailable` (the
    /// client learns nothing of the etcd endpoints).
    fn unavailable(&mut self, what: &str, e: &Error) -> Refusal {
        log::warn!(event = "etcd_failed"; "fleetlock: {what}: {e}");
        self.metrics.set_etcd_up(false);
        Refusal::new(
            Kind::Unavailable,
            format!("cannot decide: etcd did not answer ({what}); nothing was granted"),
        )
    }

    // -----------------------------------------------------------------------
    // HTTP

    /// Answers one request.
    fn handle(&mut self, mut request: Request) {
        let url = request.url().to_string();
        let path = url.split(['?', '#']).next().unwrap_or("").to_string();
        if path == "/metrics" {
            return self.serve_metrics(request);
        }
        let Some(op) = Operation::from_path(&path) else {
            let refusal = Refusal::new(
                Kind::NotFound,
                "not a FleetLock path: POST <base>/v1/pre-reboot or <base>/v1/steady-state",
            );
            return self.respond(request, OPERATION_NONE, Err(refusal));
        };
        let operation = op.as_str();
        if *request.method() != Method::Post {
            let refusal = Refusal::new(Kind::MethodNotAllowed, "FleetLock requests are POST");
            return self.respond(request, operation, Err(refusal));
        }
        let header = request
            .headers()
            .iter()
            .find(|h| h.field.equiv(protocol::HEADER))
            .map(|h| h.value.as_str().to_string());
        if !protocol::header_ok(header.as_deref()) {
            let refusal = Refusal::new(
                Kind::MissingHeader,
                format!("the header `{}: true` is required", protocol::HEADER),
            );
            return self.respond(request, operation, Err(refusal));
        }
        let body = match self.read_body(&mut request) {
            Ok(body) => body,
            Err(refusal) => return self.respond_discarding(request, operation, refusal),
        };
        let answer = self.decide(op, &request, &body);
        self.respond(request, answer.operation, answer.result);
    }

    /// The body when it is small enough and already read by tiny_http (or
    /// absent); a refusal otherwise, without reading it. tiny_http reads a
    /// body itself only when it has a Content-Length of at most 1024 bytes
    /// and no `Expect: 100-continue` (it would wait for the client's
    /// body on our thread then).
    fn read_body(&self, request: &mut Request) -> std::result::Result<Vec<u8>, Refusal> {
        let has = |name: &'static str| request.headers().iter().any(|h| h.field.equiv(name));
        let chunked = has("Transfer-Encoding");
        if has("Expect") {
            return Err(Refusal::new(
                Kind::BadRequest,
                "Expect: 100-continue is not supported; send the body with the request",
            ));
        }
        match request.body_length() {
            None if chunked => Err(Refusal::new(
                Kind::LengthRequired,
                "send the body with a Content-Length (chunked bodies are not accepted)",
            )),
            Some(n) if n > MAX_BODY_BYTES => Err(Refusal::new(
                Kind::BodyTooLarge,
                format!("the body has {n} bytes; a FleetLock body has at most {MAX_BODY_BYTES}"),
            )),
            _ => {
                let mut body = Vec::new();
                let read = std::io::Read::read_to_end(
                    &mut std::io::Read::take(request.as_reader(), MAX_BODY_BYTES as u64),
                    &mut body,
                );
                read.map(|_| body).map_err(|e| {
                    Refusal::new(Kind::BadRequest, format!("cannot read the body: {e}"))
                })
            }
        }
    }

    fn decide(&mut self, op: Operation, request: &Request, body: &[u8]) -> Answer {
        let operation = op.as_str();
        let refuse = |r: Refusal| Answer {
            operation,
            result: Err(r),
        };
        let params = match protocol::parse_body(body) {
            Ok(p) => p,
            Err(r) => return refuse(r),
        };
        let Some(group) = self.group(&params.group).cloned() else {
            let known: Vec<&str> = self
                .section
                .groups
                .iter()
                .map(|g| g.name.as_str())
                .collect();
            return refuse(Refusal::new(
                Kind::UnknownGroup,
                format!(
                    "group {:?} is not served here (groups: {})",
                    params.group,
                    known.join(", ")
                ),
            ));
        };
        if let Some(expected) = self.auth.get(&group.name) {
            let given = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.as_str());
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
                return refuse(Refusal::new(
                    Kind::Unauthorized,
                    format!("group {} needs HTTP basic auth", group.name),
                ));
            }
        }
        let result = match op {
            Operation::PreReboot => self.pre_reboot(&group, &params),
            Operation::SteadyState => self.steady_state(&group, &params),
        };
        Answer { operation, result }
    }

    fn respond(
        &mut self,
        request: Request,
        operation: &str,
        result: std::result::Result<String, Refusal>,
    ) {
        let response = self.response(operation, &result);
        if let Err(e) = request.respond(response) {
            log::debug!("fleetlock: could not answer a request: {e}");
        }
    }

    /// Answers a request whose body was not read. tiny_http discards the
    /// body when the request is dropped, reading it to its announced end:
    /// that happens on a thread of its own, so the decisions never wait.
    fn respond_discarding(&mut self, request: Request, operation: &str, refusal: Refusal) {
        let response = self.response(operation, &Err(refusal));
        if self.discarding.load(Ordering::SeqCst) >= MAX_DISCARD_THREADS {
            let _ = request.respond(response);
            return;
        }
        let count = Arc::clone(&self.discarding);
        count.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name("fleetlock-discard".into())
            .spawn(move || {
                let _ = request.respond(response);
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            self.discarding.fetch_sub(1, Ordering::SeqCst);
            log::warn!("fleetlock: cannot start a thread to discard a body: {e}");
        }
    }

    /// The HTTP answer of `result`, counted in the metrics and logged.
    fn response(
        &mut self,
        operation: &str,
        result: &std::result::Result<String, Refusal>,
    ) -> Response<std::io::Cursor<Vec<u8>>> {
        let (status, kind, body) = match result {
            Ok(value) => (200, KIND_OK, protocol::answer_body(KIND_OK, value)),
            Err(r) => (r.kind.status(), r.kind.as_str(), r.body()),
        };
        self.metrics.count(operation, kind);
        if let Err(r) = result {
            log::debug!(event = "fleetlock_refused", operation = operation, kind = kind; "{operation}: {} {}", kind, r.value);
        }
        let mut response = Response::from_string(body).with_status_code(status);
        let mut add = |name: &str, value: &str| {
            if let Ok(h) = Header::from_bytes(name, value) {
                response.add_header(h);
            }
        };
        add("Content-Type", "application/json");
        if let Err(r) = result {
            if let Some(wait) = r.retry_after {
                add("Retry-After", &wait.as_secs().max(1).to_string());
            }
            match r.kind {
                Kind::Unauthorized => {
                    add("WWW-Authenticate", "Basic realm=\"rebootctl fleetlock\"")
                }
                Kind::MethodNotAllowed => add("Allow", "POST"),
                _ => {}
            }
        }
        response
    }

    fn serve_metrics(&mut self, request: Request) {
        let response = if matches!(request.method(), Method::Get | Method::Head) {
            let mut r = Response::from_string(self.metrics.render());
            if let Ok(h) = Header::from_bytes("Content-Type", CONTENT_TYPE) {
                r.add_header(h);
            }
            r
        } else {
            let mut r = Response::from_string("method not allowed\n").with_status_code(405);
            if let Ok(h) = Header::from_bytes("Allow", "GET, HEAD") {
                r.add_header(h);
            }
            r
        };
        if let Err(e) = request.respond(response) {
            log::debug!("fleetlock: could not answer /metrics: {e}");
        }
    }

    // -----------------------------------------------------------------------
    // The two operations

    /// Locks a slot for `params.id`, or renews the hold it has.
    fn pre_reboot(
        &mut self,
        group: &FleetLockGroup,
        params: &ClientParams,
    ) -> std::result::Result<String, Refusal> {
        let id = params.id.as_str();
        let lock = self.lock(group);
        let holders = match lock.holders() {
            Ok((h, _)) => h,
            Err(e) => return Err(self.unavailable("reading the lock", &e)),
        };
        self.metrics.set_etcd_up(true);
        // Recursive: a holder asking again keeps its slot, for another max_hold.
        if let Some(mine) = holding_of(&holders, id) {
            match self.cluster.client.lease_keepalive(mine.lease) {
                Ok(Some(_)) => {
                    return Ok(format!(
                        "{} is still held by {id}; the hold is renewed for {}",
                        mine.key,
                        human_duration(self.section.max_hold)
                    ));
                }
                // Expired between the read and now: ask like anyone else.
                Ok(None) => {}
                Err(e) => return Err(self.unavailable("renewing the hold", &e)),
            }
        }
        if let Some(agent) = holders.iter().find(|s| s.is_agent(id)) {
            return Err(Refusal::new(
                Kind::IdConflict,
                format!(
                    "{id} is the node name of a rebootctl agent holding {}; give the client another id",
                    agent.key
                ),
            ));
        }
        self.gates(group, id, &holders)?;
        let lease = match self.cluster.client.lease_grant(self.section.max_hold) {
            Ok(l) => l.id,
            Err(e) => return Err(self.unavailable("granting the hold's lease", &e)),
        };
        let value =
            SlotValue::fleetlock(id, &group.name, &crate::time::timestamp_now(), group.slots);
        let outcome = lock.acquire(&value, lease);
        if !matches!(outcome, Ok(Acquire::Held(_))) {
            if let Err(e) = self.cluster.client.lease_revoke(lease) {
                log::warn!(
                    "fleetlock: cannot revoke the unused lease {lease:x} (it expires by itself): {e}"
                );
            }
        }
        match outcome {
            Ok(Acquire::Held(slot)) => {
                log::info!(
                    event = "fleetlock_granted", group = group.name.as_str(), id = id;
                    "fleetlock: {id} (group {}) took {} for at most {}",
                    group.name,
                    slot.key,
                    human_duration(self.section.max_hold)
                );
                if let Err(e) = self.cluster.record_history_for(id, "fleetlock_granted") {
                    log::warn!("fleetlock: cannot record the history entry: {e}");
                }
                Ok(format!(
                    "{id} holds {} until steady-state (at most {} without a new pre-reboot)",
                    slot.key,
                    human_duration(self.section.max_hold)
                ))
            }
            Ok(Acquire::Busy(holders)) => Err(Refusal::new(
                Kind::SemaphoreFull,
                format!(
                    "all {} slot{} of group {} are held: {}",
                    group.slots,
                    if group.slots == 1 { "" } else { "s" },
                    group.name,
                    describe(&holders)
                ),
            )),
            Err(e) => {
                // A concurrent pre-reboot of the same id (a retry through
                // another server) may have won: then this one holds too.
                if let Ok((now, _)) = lock.holders() {
                    if let Some(mine) = holding_of(&now, id) {
                        return Ok(format!("{id} holds {}", mine.key));
                    }
                }
                Err(self.unavailable("taking a slot", &e))
            }
        }
    }

    /// The gates a new grant must pass: pause, the group's windows, the
    /// cooldown, the cluster policies (with the client counted as down).
    fn gates(
        &mut self,
        group: &FleetLockGroup,
        id: &str,
        holders: &[Slot],
    ) -> std::result::Result<(), Refusal> {
        match self.cluster.pause() {
            Ok(None) => {}
            Ok(Some((rec, _))) => {
                let why = if rec.reason.is_empty() {
                    "no reason given".to_string()
                } else {
                    rec.reason
                };
                return Err(Refusal::new(
                    Kind::Paused,
                    format!("the cluster is paused: {why} (by {} at {})", rec.by, rec.at),
                ));
            }
            Err(e) => return Err(self.unavailable("reading the pause", &e)),
        }
        let now = Timestamp::now();
        match group.windows.verdict(now) {
            WindowVerdict::Open => {}
            verdict => {
                let why = match verdict {
                    WindowVerdict::Denied { entry } => format!("inside deny window {entry:?}"),
                    _ => "outside every allow window".to_string(),
                };
                let next = group.windows.next_open(now);
                let text = format!(
                    "group {}: {why} ({}){}",
                    group.name,
                    group.windows.timezone_name(),
                    match next {
                        Some(t) => format!("; opens in {}", human_duration(secs_between(now, t))),
                        None => "; no opening within 8 days".to_string(),
                    }
                );
                let refusal = Refusal::new(Kind::OutsideWindow, text);
                return Err(match next {
                    Some(t) => refusal.retry_after(secs_between(now, t)),
                    None => refusal,
                });
            }
        }
        match self.cluster.cooldown() {
            Ok(None) => {}
            Ok(Some((rec, left))) => {
                return Err(Refusal::new(
                    Kind::Cooldown,
                    format!(
                        "the cluster cooldown after {}'s reboot has {} left",
                        rec.node,
                        human_duration(left)
                    ),
                )
                .retry_after(left));
            }
            Err(e) => return Err(self.unavailable("reading the cooldown", &e)),
        }
        // The agents' slots and this group's (when it is another lock).
        let mut slots: Vec<Slot> = match self.cluster.lock.holders() {
            Ok((s, _)) => s,
            Err(e) => return Err(self.unavailable("reading the agents' lock", &e)),
        };
        for h in holders {
            if !slots.iter().any(|s| s.key == h.key) {
                slots.push(h.clone());
            }
        }
        let mut nodes = match self.cluster.node_states(&slots) {
            Ok(n) => n,
            Err(e) => return Err(self.unavailable("reading the nodes' health", &e)),
        };
        // A grant is a slot taken and a host going down at once: as an agent
        // counts under the lock, every other holder counts as down, not
        // only those already rebooting.
        for n in nodes.iter_mut().filter(|n| n.slot.is_some()) {
            n.slot = Some(SlotPhase::Rebooting);
        }
        match policy_allows(id, &nodes, &self.cfg.cluster_policies) {
            PolicyVerdict::Allowed(_) => Ok(()),
            PolicyVerdict::Forbidden(why) => Err(Refusal::new(
                Kind::ClusterUnhealthy,
                format!("a cluster policy forbids another host going down: {why}"),
            )),
        }
    }

    /// Unlocks what `params.id` holds in the group's lock (nothing held is
    /// a success too), after starting the cooldown as an agent does.
    fn steady_state(
        &mut self,
        group: &FleetLockGroup,
        params: &ClientParams,
    ) -> std::result::Result<String, Refusal> {
        let id = params.id.as_str();
        let lock = self.lock(group);
        let holders = match lock.holders() {
            Ok((h, _)) => h,
            Err(e) => return Err(self.unavailable("reading the lock", &e)),
        };
        self.metrics.set_etcd_up(true);
        let mine: Vec<&Slot> = holders
            .iter()
            .filter(|s| s.is_fleetlock() && s.node() == id)
            .collect();
        if mine.is_empty() {
            return Ok(format!("{id} holds no slot of group {}", group.name));
        }
        // The cooldown starts before the slot is free, so whoever the
        // release wakes already sees it.
        let acting = self.cluster.with_node(id);
        let interval = self.cfg.min_reboot_interval;
        if !interval.is_zero() {
            let started = acting.cooldown_lease(interval).and_then(|lease| {
                acting.start_cooldown_on(lease, &crate::time::timestamp_now(), interval)
            });
            if let Err(e) = started {
                return Err(self.unavailable("starting the cooldown", &e));
            }
        }
        let mut released = Vec::new();
        for slot in mine {
            match lock.release(slot) {
                Ok(true) => released.push(slot.key.clone()),
                // Changed meanwhile (expired, unlocked by an operator).
                Ok(false) => {}
                Err(e) => return Err(self.unavailable("releasing the slot", &e)),
            }
            if let Err(e) = self.cluster.client.lease_revoke(slot.lease) {
                log::warn!(
                    "fleetlock: cannot revoke lease {:x} (it expires by itself): {e}",
                    slot.lease
                );
            }
        }
        log::info!(
            event = "fleetlock_released", group = group.name.as_str(), id = id;
            "fleetlock: {id} (group {}) released {}",
            group.name,
            if released.is_empty() { "nothing (already gone)".to_string() } else { released.join(", ") }
        );
        if let Err(e) = acting.record_history("fleetlock_released", "") {
            log::warn!("fleetlock: cannot record the history entry: {e}");
        }
        Ok(format!("{id} released its slot of group {}", group.name))
    }

    // -----------------------------------------------------------------------
    // The sweep

    /// Reads every group's lock: the holder gauges, and each FleetLock hold
    /// whose lease ends within `hold_warning_sec` reported once.
    fn sweep(&mut self) {
        let mut present: BTreeSet<(String, i64)> = BTreeSet::new();
        let groups = self.section.groups.clone();
        for group in &groups {
            let holders = match self.lock(group).holders() {
                Ok((h, _)) => h,
                Err(e) => {
                    self.unavailable("the periodic read of the locks", &e);
                    return;
                }
            };
            self.metrics.set_etcd_up(true);
            let mut gauge = GroupGauge::default();
            for slot in &holders {
                if !slot.is_fleetlock() {
                    gauge.agents += 1;
                    continue;
                }
                gauge.fleetlock += 1;
                let left = match self.cluster.client.lease_time_to_live(slot.lease) {
                    Ok(Some(ttl)) => Duration::from_secs(ttl.max(0).unsigned_abs()),
                    // Gone since the read: nothing left to report.
                    Ok(None) => continue,
                    Err(e) => {
                        self.unavailable("reading a hold's lease", &e);
                        return;
                    }
                };
                if left > self.section.hold_warning {
                    continue;
                }
                gauge.expiring += 1;
                let holding = (slot.key.clone(), slot.create_revision);
                present.insert(holding.clone());
                if self.warned.insert(holding) {
                    self.report_expiring(slot, left);
                }
            }
            self.metrics.set_group(&group.name, gauge);
        }
        self.warned.retain(|h| present.contains(h));
    }

    fn report_expiring(&self, slot: &Slot, left: Duration) {
        let (id, group, since) = slot
            .value
            .as_ref()
            .map(|v| (v.node.as_str(), v.group.as_str(), v.acquired_at.as_str()))
            .unwrap_or(("?", "?", "?"));
        let text = format!(
            "FleetLock client {id} (group {group}) has held {} since {since} without a new pre-reboot or a steady-state; the hold expires in {} and the slot is then free",
            slot.key,
            human_duration(left)
        );
        log::warn!(event = "fleetlock_hold_expiring", id = id, group = group; "fleetlock: {text}");
        self.notifier.send(HOLD_EXPIRING_EVENT, &text);
    }
}

/// The FleetLock holding of `id` among `holders`.
fn holding_of<'a>(holders: &'a [Slot], id: &str) -> Option<&'a Slot> {
    holders.iter().find(|s| s.is_fleetlock() && s.node() == id)
}

/// The holders for people: `web-2 (agent, rebooting), c988… (fleetlock)`.
fn describe(holders: &[Slot]) -> String {
    holders
        .iter()
        .map(|s| match &s.value {
            Some(v) => format!("{} ({}, {})", v.node, v.kind.as_str(), v.phase.as_str()),
            None => format!("{} (unreadable value)", s.key),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compares two secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"Basic abc", b"Basic abc"));
        assert!(!constant_time_eq(b"Basic abc", b"Basic abd"));
        assert!(!constant_time_eq(b"Basic ab", b"Basic abc"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
