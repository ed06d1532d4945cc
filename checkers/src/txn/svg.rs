//! A drawing of a cycle as SVG text, made by faultline (no graphviz): the
//! transactions on a circle, each edge an arrow labelled with its kind, the
//! sentences that explain the edges listed below.

use super::anomaly::Anomaly;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Adds the drawing of each anomaly's cycle (`"svg"`) to its written
/// form (`written[i]` is `anomalies[i]` as JSON), so `report.html` and
/// `check --html` draw the cycles.
pub fn attach_cycles(anomalies: &[Anomaly], written: &mut [serde_json::Value]) {
    for (a, w) in anomalies.iter().zip(written.iter_mut()) {
        if let (Some(svg), serde_json::Value::Object(m)) = (cycle_svg(a), w) {
            m.insert("svg".into(), serde_json::Value::String(svg));
        }
    }
}

/// The SVG of an anomaly's cycle (`None` when it has no cycle).
pub fn cycle_svg(a: &Anomaly) -> Option<String> {
    if a.cycle.is_empty() {
        return None;
    }
    let n = a.cycle.len();
    let r = 40.0 + 18.0 * n as f64;
    let (cx, cy) = (r + 60.0, r + 50.0);
    let width = 2.0 * cx;
    let line_h = 16.0;
    let height = 2.0 * cy + 30.0 + line_h * n as f64;
    let pos = |i: usize| {
        let t = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
        (cx + r * t.cos(), cy + r * t.sin())
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" \
         markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#333\"/></marker></defs>\n\
         <text x=\"8\" y=\"18\" font-weight=\"bold\">{}</text>\n",
        escape(&a.kind.name())
    );
    let node_r = 22.0;
    for (i, e) in a.cycle.iter().enumerate() {
        let (x1, y1) = pos(i);
        let (x2, y2) = pos((i + 1) % n);
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        // Bend outwards so that the two edges of a 2-cycle do not overlap.
        let (mx, my) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
        let (ox, oy) = (mx - cx, my - cy);
        let olen = (ox * ox + oy * oy).sqrt().max(1.0);
        let bend = if n == 2 { 40.0 } else { 18.0 };
        let (qx, qy) = (mx + ox / olen * bend, my + oy / olen * bend);
        let (qx, qy) = if n == 2 {
            (mx - uy * bend, my + ux * bend)
        } else {
            (qx, qy)
        };
        let color = match e.kind {
            "rw" => "#c0392b",
            "wr" => "#2471a3",
            "ww" => "#1e8449",
            _ => "#7d3c98",
        };
        s.push_str(&format!(
            "<path d=\"M{:.1},{:.1} Q{qx:.1},{qy:.1} {:.1},{:.1}\" fill=\"none\" stroke=\"{color}\" \
             stroke-width=\"2\" marker-end=\"url(#arrow)\"><title>{}</title></path>\n\
             <text x=\"{qx:.1}\" y=\"{qy:.1}\" fill=\"{color}\" text-anchor=\"middle\">{}</text>\n",
            x1 + ux * node_r,
            y1 + uy * node_r,
            x2 - ux * node_r,
            y2 - uy * node_r,
            escape(&e.why),
            escape(e.kind)
        ));
    }
    for (i, e) in a.cycle.iter().enumerate() {
        let (x, y) = pos(i);
        s.push_str(&format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{node_r}\" fill=\"#fdfefe\" stroke=\"#333\"/>\n\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            y + 4.0,
            escape(&e.from)
        ));
    }
    let mut y = 2.0 * cy + 20.0;
    for e in &a.cycle {
        s.push_str(&format!(
            "<text x=\"8\" y=\"{y:.1}\">{} \u{2192} {} ({}): {}</text>\n",
            escape(&e.from),
            escape(&e.to),
            escape(e.kind),
            escape(&e.why)
        ));
        y += line_h;
    }
    s.push_str("</svg>\n");
    Some(s)
}
