//! The agent as a FleetLock client (`lock_backend: fleetlock`): one
//! blocking POST per operation to the configured base URL, shaped as
//! Zincati's (the body pretty-printed, the `fleet-lock-protocol` header,
//! no Content-Type), and the answer read as the protocol says: 200 is a
//! success, anything else a refusal whose `kind` the pass maps onto its own
//! gates. A failure to get any answer is an error (the pass backs off).

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;

use crate::config::FleetLockClient;
use crate::error::{Error, Result};
use crate::fleetlock::appid::app_specific_id;
use crate::fleetlock::protocol::{self, Operation};

/// Timeout of one request (connect, send, answer): a FleetLock server
/// answers from one etcd round trip or two.
const REQUEST_TIMEOUT_SECS: u64 = 30;
/// Read and write buffer size: requests and answers are a few hundred bytes.
const IO_BUFFER_BYTES: usize = 16 * 1024;
/// The most of an answer body read (a refusal is a short JSON object).
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// What the server answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 200: locked (pre-reboot) or unlocked (steady-state).
    Ok,
    /// Anything else.
    Refused(Refused),
}

/// A refusal as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The HTTP status.
    pub status: u16,
    /// The `kind` of the body (`generic_http_<status>` when the body is not
    /// a FleetLock answer, as Zincati labels it).
    pub kind: String,
    /// The `value` of the body.
    pub value: String,
    /// The `Retry-After` header, in seconds, when present.
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {}): {}", self.kind, self.status, self.value)
    }
}

/// A FleetLock client for one id and group.
pub struct Client {
    base: String,
    id: String,
    group: String,
    body: String,
    authorization: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("id", &self.id)
            .field("group", &self.group)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// The id an agent sends: `fleetlock_id`, else the app-specific id of the
/// machine id in `machine_id_file`.
pub fn client_id(cfg: &FleetLockClient, machine_id_file: &Path) -> Result<String> {
    if let Some(id) = &cfg.id {
        return Ok(id.clone());
    }
    let text = std::fs::read_to_string(machine_id_file).map_err(|e| {
        Error::io(
            "reading the machine id (for the FleetLock id) from",
            machine_id_file,
            e,
        )
    })?;
    app_specific_id(&text).ok_or_else(|| {
        Error::Runtime(format!(
            "{} does not hold a machine id (32 hex digits): set fleetlock_id",
            machine_id_file.display()
        ))
    })
}

/// The `Authorization` header value of HTTP basic auth with the password
/// read from `password_file` (its trailing newline dropped); never logged.
pub fn basic_authorization(username: &str, password_file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(password_file)
        .map_err(|e| Error::io("reading the FleetLock password file", password_file, e))?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(Error::Runtime(format!(
            "the FleetLock password file {} is empty",
            password_file.display()
        )));
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    Ok(format!("Basic {token}"))
}

impl Client {
    /// The client of `cfg`; reads the machine id (for a derived id) and the
    /// password file. Contacts nothing.
    pub fn new(cfg: &FleetLockClient, machine_id_file: &Path) -> Result<Client> {
        let id = client_id(cfg, machine_id_file)?;
        let authorization = match &cfg.auth {
            Some(a) => Some(basic_authorization(&a.username, &a.password_file)?),
            None => None,
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Refusals carry a JSON body we read ourselves.
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(REQUEST_TIMEOUT_SECS)))
            .user_agent(concat!("rebootctl/", env!("CARGO_PKG_VERSION")))
            .input_buffer_size(IO_BUFFER_BYTES)
            .output_buffer_size(IO_BUFFER_BYTES)
            .build()
            .into();
        Ok(Client {
            base: cfg.url.clone(),
            body: protocol::request_body(&id, &cfg.group),
            id,
            group: cfg.group.clone(),
            authorization,
            agent,
        })
    }

    /// The client id sent.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The group sent.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Asks for a slot (recursive: asking again while holding it is a 200).
    pub fn pre_reboot(&self) -> Result<Answer> {
        self.post(Operation::PreReboot)
    }

    /// Gives the slot back (a 200 also when none is held).
    pub fn steady_state(&self) -> Result<Answer> {
        self.post(Operation::SteadyState)
    }

    fn post(&self, op: Operation) -> Result<Answer> {
        // The base is validated to be empty-pathed or to end in '/'.
        let url = if self.base.ends_with('/') {
            format!("{}{}", self.base, op.path())
        } else {
            format!("{}/{}", self.base, op.path())
        };
        let mut request = self.agent.post(&url).header(protocol::HEADER, "true");
        if let Some(a) = &self.authorization {
            request = request.header("Authorization", a);
        }
        let mut response = request.send(self.body.as_bytes()).map_err(|e| {
            Error::Runtime(format!("FleetLock {} at {}: {e}", op.as_str(), self.base))
        })?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(Answer::Ok);
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        let (kind, value) = protocol::parse_answer(&body)
            .unwrap_or_else(|| (format!("generic_http_{status}"), String::new()));
        Ok(Answer::Refused(Refused {
            status,
            kind,
            value,
            retry_after,
        }))
    }
}
