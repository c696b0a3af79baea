//! The words and numbers the status table and the status page both write:
//! times, ages, weights and the notes beside a service.

/// A weight, or `-` where there is none (not in the table).
pub(crate) fn weight_or_dash(weight: Option<u32>) -> String {
    weight.map_or_else(|| "-".to_owned(), |w| w.to_string())
}

/// The mark of an entry managed mode created (the legend explains it).
pub(crate) fn created_mark(created: bool) -> &'static str {
    if created {
        " *"
    } else {
        ""
    }
}

/// What a service's quorum guard is doing, if it acts.
pub(crate) fn quorum_guard_note(active: bool, has_sorry_server: bool) -> Option<&'static str> {
    match (active, has_sorry_server) {
        (true, false) => Some("quorum guard active: failed servers kept"),
        (true, true) => Some("quorum guard active: the sorry server takes the traffic"),
        (false, _) => None,
    }
}

/// `2023-11-14 22:13:20 (5m)`: a UTC time and how long ago it was.
pub(crate) fn when(unix: f64, now: f64) -> String {
    format!("{} ({})", utc(unix), age(now - unix))
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc(unix: f64) -> String {
    let secs = unix.floor() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// A duration in seconds, as `45s`, `3m12s`, `2h5m`, `3d4h`.
pub(crate) fn age(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 if s % 60 == 0 => format!("{}m", s / 60),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}
