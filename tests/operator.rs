//! Operator experience through the real binary (issue 15): readable times
//! in `status`.

use crate::common;

use common::fixture::Fixture;
use serde_json::Value;

/// The detail of the `status --json` step named `name`.
fn step_detail(stdout: &str, name: &str) -> String {
    let doc: Value = serde_json::from_str(stdout).expect("status --json is JSON");
    doc["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .and_then(|s| s["detail"].as_str())
        .unwrap_or_else(|| panic!("no step {name} in {doc:#}"))
        .to_string()
}

#[test]
fn status_says_when_a_window_opens_as_a_weekday_a_local_time_and_a_short_duration() {
    let mut fx = Fixture::new("opens");
    fx.need_reboot();
    // An allow window on the weekday two days from now (Berlin time).
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let now = jiff::Timestamp::now().to_zoned_datetime(tz);
    let today = usize::try_from(now.weekday().to_monday_zero_offset()).unwrap();
    let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(today + 2) % 7];
    fx.set(
        "windows",
        &format!("{{timezone: Europe/Berlin, allow: [\"{day} 22:00-23:00\"]}}"),
    );
    let r = fx.rebootctl(&["status", "--json", "--skip-health"]);
    assert_eq!(r.code, 7, "{r:?}");
    let detail = step_detail(&r.stdout, "window");
    let (_, opens) = detail
        .split_once("; opens ")
        .unwrap_or_else(|| panic!("no opening in {detail:?}"));
    let (at, how_far) = opens.split_once(", in ").expect("`<time>, in <duration>`");
    assert!(
        at == format!("{day} 22:00 CET") || at == format!("{day} 22:00 CEST"),
        "{detail}"
    );
    // Two units at most, days first: "2d 6h", "1d 23h", "2d".
    let units: Vec<&str> = how_far.split(' ').collect();
    assert!(units.len() <= 2 && units[0].ends_with('d'), "{detail}");
    assert!(
        units
            .iter()
            .all(|u| u[..u.len() - 1].parse::<u32>().is_ok()),
        "{detail}"
    );
    // The text output says the same.
    let text = fx.rebootctl(&["status", "--skip-health"]);
    assert!(
        text.stdout.contains(&format!("{day} 22:00 CE")),
        "{}",
        text.stdout
    );
    assert!(
        !text.stdout.contains("day "),
        "humantime's long style: {}",
        text.stdout
    );
}

// ---------------------------------------------------------------------------
// Notifications: each body as a local receiver gets it.

/// A webhook receiver on 127.0.0.1: every request's JSON body arrives on
/// the channel; stops with the test.
struct Receiver {
    server: std::sync::Arc<tiny_http::Server>,
    url: String,
    got: std::sync::mpsc::Receiver<Value>,
}

impl Receiver {
    fn start() -> Receiver {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
        let port = server.server_addr().to_ip().expect("IP").port();
        let (tx, got) = std::sync::mpsc::channel();
        let s = std::sync::Arc::clone(&server);
        std::thread::spawn(move || {
            while let Ok(mut rq) = s.recv() {
                let mut body = String::new();
                let _ = rq.as_reader().read_to_string(&mut body);
                let _ = tx.send(serde_json::from_str(&body).unwrap_or(Value::Null));
                let _ = rq.respond(tiny_http::Response::from_string("ok"));
            }
        });
        Receiver {
            server,
            url: format!("http://127.0.0.1:{port}/hook/secret"),
            got,
        }
    }

    fn next(&self) -> Value {
        self.got
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a notification within 10 s")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

#[test]
fn a_template_body_for_each_reboot_event_and_node_back_with_its_downtime() {
    let rx = Receiver::start();
    let mut fx = Fixture::new("tmpl");
    fx.set(
        "notify",
        &format!(
            "{{url: \"{}\", format: template, events: [reboot_started, reboot_completed, node_back], \
             template: '{{\"event\": \"${{RC_EVENT}}\", \"node\": \"${{RC_NODE_NAME}}\", \"text\": \"${{RC_TEXT}}\", \"why\": \"${{RC_REASON}}\", \"down_sec\": \"${{RC_DOWN_SEC}}\"}}'}}",
            rx.url
        ),
    );
    fx.need_reboot();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    let started = rx.next();
    assert_eq!(started["event"], "reboot_started", "{started}");
    assert_eq!(started["node"], "tmpl");
    assert_eq!(started["why"], "marker");
    assert_eq!(started["down_sec"], "");

    // Back: a new boot id, the need gone.
    std::fs::remove_file(fx.path("need-reboot")).unwrap();
    fx.new_boot("boot-2");
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(rx.next()["event"], "reboot_completed");
    let back = rx.next();
    assert_eq!(back["event"], "node_back", "{back}");
    assert_eq!(back["why"], "marker");
    let down: u64 = back["down_sec"].as_str().unwrap().parse().expect("seconds");
    assert!(down < 60, "{back}");
    let text = back["text"].as_str().unwrap();
    assert!(
        text.starts_with("tmpl is back after ") && text.ends_with(" down: healthy"),
        "{text}"
    );
}

#[test]
fn teams_gets_an_adaptive_card_through_the_binary() {
    let rx = Receiver::start();
    let mut fx = Fixture::new("teams");
    fx.set(
        "notify",
        &format!(
            "{{url: \"{}\", format: teams, events: [reboot_started]}}",
            rx.url
        ),
    );
    fx.need_reboot();
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    let card = rx.next();
    assert_eq!(card["type"], "message");
    let content = &card["attachments"][0]["content"];
    assert_eq!(content["type"], "AdaptiveCard", "{card:#}");
    assert_eq!(content["body"][0]["text"], "Rebooting: teams");
}

#[test]
fn a_template_that_is_not_json_or_names_an_unknown_placeholder_is_refused() {
    let mut fx = Fixture::new("badtmpl");
    fx.set(
        "notify",
        "{url: \"http://127.0.0.1:9/x\", format: template, template: '{\"t\": ${RC_TEXT}, \"x\": \"${RC_NOPE}\"}'}",
    );
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("notify.template: unknown placeholder ${RC_NOPE}"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("notify.template: is not a JSON document once expanded"),
        "{}",
        r.stderr
    );
    fx.set(
        "notify",
        "{url: \"http://127.0.0.1:9/x\", format: temlpate}",
    );
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("did you mean `template`?"),
        "{}",
        r.stderr
    );
}
