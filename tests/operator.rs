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
