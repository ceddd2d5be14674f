//! The fleet timeline as a picture (`make demo` writes
//! `target/demo/timeline.svg`): one lane per node, coloured by what the
//! node is doing — waiting for a slot, holding one while checking,
//! rebooting (power off), back (booting and the post-reboot check, slot
//! still held) — and under the lanes the slots in use against the slot
//! count, as a band. Drawn from the same [`Event`]s as the text timeline;
//! plain SVG text, no dependency.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::fleet::{Event, Kind};

/// What a node is doing between two of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Needs a reboot, holds no slot.
    Waiting,
    /// Holds a slot in phase checking (the checks under the lock).
    Checking,
    /// The reboot command ran: the power is off.
    Rebooting,
    /// Booted again, slot still held until the post-reboot check passes.
    Back,
}

impl State {
    fn colour(self) -> &'static str {
        match self {
            State::Waiting => "#f2c14e",
            State::Checking => "#4c78d8",
            State::Rebooting => "#e4572e",
            State::Back => "#59a14f",
        }
    }

    fn label(self) -> &'static str {
        match self {
            State::Waiting => "waiting for a slot",
            State::Checking => "holding a slot, checking",
            State::Rebooting => "rebooting (power off)",
            State::Back => "back, post-reboot check",
        }
    }
}

/// One coloured stretch of a lane, in µs since the first event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// What the node was doing.
    pub state: State,
    /// From.
    pub from_us: u64,
    /// To.
    pub to_us: u64,
}

/// Each node's segments, in node order.
pub type Lanes = BTreeMap<String, Vec<Segment>>;

/// The lanes and the slots in use over time (`(t_us, count)` at each
/// change), both relative to the first event.
pub fn lanes(events: &[Event]) -> (Lanes, Vec<(u64, usize)>) {
    let t0 = events.first().map(|e| e.t_us).unwrap_or(0);
    let end = events.last().map(|e| e.t_us - t0).unwrap_or(0);
    let mut lanes = Lanes::new();
    let mut open: BTreeMap<String, (State, u64)> = BTreeMap::new();
    let mut needs: BTreeMap<String, bool> = BTreeMap::new();
    let mut held: BTreeMap<String, bool> = BTreeMap::new();
    let mut slots = vec![(0, 0)];
    for e in events.iter().filter(|e| e.kind != Kind::Note) {
        let t = e.t_us - t0;
        let node = e.node.clone();
        lanes.entry(node.clone()).or_default();
        let current = open.get(&node).map(|(s, _)| *s);
        let next = match e.kind {
            Kind::NeedSet => {
                needs.insert(node.clone(), true);
                current.or(Some(State::Waiting))
            }
            Kind::NeedCleared => {
                needs.insert(node.clone(), false);
                match current {
                    Some(State::Waiting) => None,
                    other => other,
                }
            }
            Kind::SlotTaken => Some(State::Checking),
            Kind::SlotRebooting | Kind::Note => current,
            Kind::Rebooting => {
                // The reboot answers the need.
                needs.insert(node.clone(), false);
                Some(State::Rebooting)
            }
            Kind::Back => Some(State::Back),
            Kind::Healthy => None,
            Kind::Released => match current {
                // Released while checking: waiting again if still needed.
                Some(State::Checking) if needs.get(&node).copied().unwrap_or(false) => {
                    Some(State::Waiting)
                }
                Some(State::Waiting) => Some(State::Waiting),
                _ => None,
            },
        };
        if next != current {
            if let Some((state, from_us)) = open.remove(&node) {
                push(lanes.entry(node.clone()).or_default(), state, from_us, t);
            }
            if let Some(state) = next {
                open.insert(node.clone(), (state, t));
            }
        }
        let before = held.values().filter(|h| **h).count();
        match e.kind {
            Kind::SlotTaken => {
                held.insert(node, true);
            }
            Kind::Released => {
                held.insert(node, false);
            }
            _ => {}
        }
        let after = held.values().filter(|h| **h).count();
        if after != before {
            slots.push((t, after));
        }
    }
    for (node, (state, from_us)) in open {
        push(lanes.entry(node).or_default(), state, from_us, end);
    }
    (lanes, slots)
}

fn push(lane: &mut Vec<Segment>, state: State, from_us: u64, to_us: u64) {
    if to_us > from_us {
        lane.push(Segment {
            state,
            from_us,
            to_us,
        });
    }
}

/// A tick step in seconds that gives about eight ticks over `span_s`.
fn tick_step(span_s: f64) -> f64 {
    [
        0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ]
    .into_iter()
    .find(|s| span_s / s <= 10.0)
    .unwrap_or(1200.0)
}

/// The timeline as an SVG document; `slots` is `max_concurrent_reboots`,
/// `title` the line above the lanes.
pub fn render(events: &[Event], slots: usize, title: &str) -> String {
    const WIDTH: f64 = 960.0;
    const LEFT: f64 = 90.0;
    const RIGHT: f64 = 24.0;
    const TOP: f64 = 70.0;
    const LANE: f64 = 22.0;
    const GAP: f64 = 10.0;
    const BAND: f64 = 36.0;
    let (lanes, used) = lanes(events);
    let span_us = events
        .first()
        .zip(events.last())
        .map(|(a, b)| b.t_us - a.t_us)
        .unwrap_or(0)
        .max(1);
    let span_s = span_us as f64 / 1e6;
    let plot = WIDTH - LEFT - RIGHT;
    let x = |t_us: u64| LEFT + plot * t_us as f64 / span_us as f64;
    let band_top = TOP + lanes.len() as f64 * (LANE + GAP) + 8.0;
    let axis = band_top + BAND + 8.0;
    let height = axis + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="22" font-size="15" font-weight="bold" fill="#222">{}</text>"##,
        escape(title)
    );
    // Legend.
    let mut lx = LEFT;
    for s in [
        State::Waiting,
        State::Checking,
        State::Rebooting,
        State::Back,
    ] {
        let _ = writeln!(
            svg,
            r##"<rect x="{lx}" y="36" width="14" height="14" fill="{}"/><text x="{}" y="47" fill="#333">{}</text>"##,
            s.colour(),
            lx + 19.0,
            s.label()
        );
        lx += 19.0 + s.label().len() as f64 * 6.6 + 22.0;
    }
    // Time grid.
    let step = tick_step(span_s);
    let mut t = 0.0;
    while t <= span_s + 1e-9 {
        let gx = x((t * 1e6) as u64);
        let _ = writeln!(
            svg,
            r##"<line x1="{gx:.1}" y1="{}" x2="{gx:.1}" y2="{axis}" stroke="#e3e3e3"/><text x="{gx:.1}" y="{}" text-anchor="middle" fill="#555">{}s</text>"##,
            TOP - 6.0,
            axis + 16.0,
            trim(t)
        );
        t += step;
    }
    // One lane per node.
    for (i, (node, segments)) in lanes.iter().enumerate() {
        let y = TOP + i as f64 * (LANE + GAP);
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#222">{}</text>"##,
            LEFT - 10.0,
            y + LANE / 2.0 + 4.0,
            escape(node)
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#cccccc"/>"##,
            y + LANE / 2.0,
            WIDTH - RIGHT,
            y + LANE / 2.0
        );
        for s in segments {
            let (x0, x1) = (x(s.from_us), x(s.to_us));
            let _ = writeln!(
                svg,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{LANE}" rx="3" fill="{}"><title>{node}: {} {:.2}s-{:.2}s</title></rect>"#,
                (x1 - x0).max(1.0),
                s.state.colour(),
                s.state.label(),
                s.from_us as f64 / 1e6,
                s.to_us as f64 / 1e6
            );
        }
    }
    // The slots: the band is the slot count, the fill the slots in use.
    let slots = slots.max(1);
    let peak = used.iter().map(|(_, n)| *n).max().unwrap_or(0).max(slots);
    let unit = BAND / peak as f64;
    let base = band_top + BAND;
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#222">slots</text><text x="{}" y="{:.1}" text-anchor="end" fill="#777" font-size="10">{slots} max</text>"##,
        LEFT - 10.0,
        band_top + BAND / 2.0,
        LEFT - 10.0,
        band_top + BAND / 2.0 + 13.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{:.1}" width="{plot}" height="{:.1}" fill="#eef1f6" stroke="#b8c2d6"/>"##,
        base - unit * slots as f64,
        unit * slots as f64
    );
    let mut path = format!("M{LEFT:.1},{base:.1}");
    let mut level = 0usize;
    for (t, n) in &used {
        let px = x(*t);
        let _ = write!(
            path,
            " L{px:.1},{:.1} L{px:.1},{:.1}",
            base - unit * level as f64,
            base - unit * *n as f64
        );
        level = *n;
    }
    let _ = write!(
        path,
        " L{:.1},{:.1} L{:.1},{base:.1} Z",
        WIDTH - RIGHT,
        base - unit * level as f64,
        WIDTH - RIGHT
    );
    let over = if peak > slots { "#e4572e" } else { "#4c78d8" };
    let _ = writeln!(
        svg,
        r#"<path d="{path}" fill="{over}" fill-opacity="0.55" stroke="{over}"/>"#
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{axis}" x2="{}" y2="{axis}" stroke="#999"/>"##,
        WIDTH - RIGHT
    );
    svg.push_str("</svg>\n");
    svg
}

fn trim(t: f64) -> String {
    let s = format!("{t:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t_s: f64, node: &str, kind: Kind) -> Event {
        Event {
            t_us: (t_s * 1e6) as u64,
            node: node.to_string(),
            kind,
            detail: String::new(),
        }
    }

    fn two_nodes() -> Vec<Event> {
        use Kind::*;
        vec![
            ev(0.0, "node-0", NeedSet),
            ev(0.0, "node-1", NeedSet),
            ev(1.0, "node-0", SlotTaken),
            ev(1.5, "node-0", SlotRebooting),
            ev(1.6, "node-0", Rebooting),
            ev(4.6, "node-0", Back),
            ev(5.0, "node-0", Healthy),
            ev(5.1, "node-0", Released),
            ev(5.2, "node-1", SlotTaken),
            ev(6.0, "node-1", Rebooting),
            ev(9.0, "node-1", Back),
            ev(9.5, "node-1", Healthy),
            ev(9.6, "node-1", Released),
        ]
    }

    #[test]
    fn lanes_follow_each_node_through_its_states() {
        let (lanes, slots) = lanes(&two_nodes());
        let states = |n: &str| -> Vec<(State, u64, u64)> {
            lanes[n]
                .iter()
                .map(|s| (s.state, s.from_us / 100_000, s.to_us / 100_000))
                .collect()
        };
        use State::*;
        assert_eq!(
            states("node-0"),
            [
                (Waiting, 0, 10),
                (Checking, 10, 16),
                (Rebooting, 16, 46),
                (Back, 46, 50)
            ]
        );
        assert_eq!(
            states("node-1"),
            [
                (Waiting, 0, 52),
                (Checking, 52, 60),
                (Rebooting, 60, 90),
                (Back, 90, 95)
            ]
        );
        let counts: Vec<usize> = slots.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [0, 1, 0, 1, 0]);
    }

    #[test]
    fn a_release_while_checking_goes_back_to_waiting() {
        use Kind::*;
        let events = [
            ev(0.0, "a", NeedSet),
            ev(1.0, "a", SlotTaken),
            ev(2.0, "a", Released),
            ev(3.0, "a", SlotTaken),
            ev(4.0, "a", Rebooting),
        ];
        let (lanes, _) = lanes(&events);
        let got: Vec<State> = lanes["a"].iter().map(|s| s.state).collect();
        assert_eq!(
            got,
            [
                State::Waiting,
                State::Checking,
                State::Waiting,
                State::Checking
            ]
        );
    }

    #[test]
    fn the_document_has_a_lane_per_node_and_the_slot_band() {
        let svg = render(&two_nodes(), 1, "demo <5 nodes>");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("demo &lt;5 nodes&gt;"));
        assert!(svg.contains(">node-0</text>") && svg.contains(">node-1</text>"));
        assert_eq!(svg.matches("<title>node-0: ").count(), 4);
        assert!(svg.contains(">slots</text>") && svg.contains(">1 max</text>"));
        // Never more than the slot count in use: the band's fill stays blue.
        assert!(!svg.contains("fill=\"#e4572e\" fill-opacity"));
    }
}
