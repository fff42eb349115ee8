//! Unix seconds as a calendar date in UTC, for what cmctl and cm-server
//! print to people (no time zone database, no calendar crate), and the
//! durations people type (`90`, `30s`, `15m`, `1h`, `7d`).

/// `90`, `90s`, `15m`, `1h`, `7d` → seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90, 30s, 15m, 1h or 7d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: units are s, m, h, d")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Unix seconds as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// How far `at` is from `now`, as people say it: "3 minutes ago", "in 7
/// days", "just now". Rounded down to the largest whole unit.
pub fn relative(at: i64, now: i64) -> String {
    let gap = now.saturating_sub(at);
    let span = gap.unsigned_abs();
    if span < 10 {
        return "just now".into();
    }
    let (n, unit) = match span {
        0..120 => (span, "second"),
        120..7_200 => (span / 60, "minute"),
        7_200..172_800 => (span / 3_600, "hour"),
        _ => (span / 86_400, "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if gap > 0 {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

/// `2026-11-25 12:53:35 UTC (3 minutes ago)`: a date people can read, and
/// how far it is from now.
pub fn utc_and_relative(at: i64, now: i64) -> String {
    format!("{} UTC ({})", utc(at), relative(at, now))
}

/// A length of time for a table cell: `45 s`, `12 min`, `5 h`, `3 d`.
pub fn span(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// How long ago (or until) `at`, for a table cell; `-` for never (0).
pub fn ago(at: i64) -> String {
    match at {
        ..=0 => "-".into(),
        at => relative(at, now()),
    }
}

/// A date people can read with how far it is from now; `-` for never (0).
pub fn when(at: i64) -> String {
    match at {
        ..=0 => "-".into(),
        at => utc_and_relative(at, now()),
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, relative, utc};

    #[test]
    fn times_read_as_people_say_them() {
        let now = 1_795_611_215;
        assert_eq!(relative(now - 3, now), "just now");
        assert_eq!(relative(now - 45, now), "45 seconds ago");
        assert_eq!(relative(now - 190, now), "3 minutes ago");
        assert_eq!(relative(now - 3_600, now), "60 minutes ago");
        assert_eq!(relative(now - 5 * 3_600, now), "5 hours ago");
        assert_eq!(relative(now + 7 * 86_400, now), "in 7 days");
        assert_eq!(relative(now + 86_400 + 60, now), "in 24 hours");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn unix_seconds_read_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_611_215), "2026-11-25 12:53:35");
    }
}
