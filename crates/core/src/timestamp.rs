//! RFC 3339 times as siuo writes them (`2026-01-01T00:00:00Z`) and reads
//! them back from files people edit: the review ledger and the maintainer
//! actions order their decisions by time, so a time is parsed and checked,
//! never compared as text.

/// A moment, as seconds and nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant {
    pub seconds: i64,
    pub nanos: u32,
}

/// How far ahead of this machine's clock a recorded time may be: another
/// reviewer's clock may run a little fast.
pub const CLOCK_SKEW_SECONDS: i64 = 5 * 60;

/// The latest second a four-digit year can name (9999-12-31T23:59:59Z).
pub const LAST_SECOND: i64 = 253_402_300_799;

/// Seconds since the epoch on this machine's clock.
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `seconds` as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format(seconds: i64) -> String {
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Parses an RFC 3339 date-time (`T` or a space between date and time,
/// optional fractional seconds, `Z` or a `±HH:MM` offset); the error says
/// what is wrong.
pub fn parse(text: &str) -> Result<Instant, String> {
    let bad = || {
        format!(
            "`{}` is not an RFC 3339 time such as 2026-01-31T09:30:00Z",
            shown(text)
        )
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return Err(bad());
    }
    let number = |from: usize, to: usize| -> Result<i64, String> {
        let part = &text[from..to];
        match part.bytes().all(|b| b.is_ascii_digit()) {
            true => part.parse::<i64>().map_err(|_| bad()),
            false => Err(bad()),
        }
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|(at, c)| bytes[*at] != *c) || !matches!(bytes[10], b'T' | b't' | b' ')
    {
        return Err(bad());
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let mut at = 19;
    let mut nanos = 0u32;
    if bytes[at] == b'.' {
        let digits = bytes[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return Err(bad());
        }
        let fraction = &text[at + 1..at + 1 + digits];
        let padded: String = fraction
            .chars()
            .chain(std::iter::repeat('0'))
            .take(9)
            .collect();
        nanos = padded.parse().map_err(|_| bad())?;
        at += 1 + digits;
    }
    let offset_minutes = match &text[at..] {
        "Z" | "z" => 0,
        zone if zone.len() == 6
            && matches!(zone.as_bytes()[0], b'+' | b'-')
            && zone.as_bytes()[3] == b':' =>
        {
            let hours = number(at + 1, at + 3)?;
            let minutes = number(at + 4, at + 6)?;
            if hours > 23 || minutes > 59 {
                return Err(bad());
            }
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (hours * 60 + minutes)
        }
        _ => return Err(bad()),
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= month_days[(month.clamp(1, 12) - 1) as usize]
        && hour <= 23
        && minute <= 59
        // 60 is a leap second.
        && second <= 60;
    if !valid {
        return Err(format!("`{}` is not a real date and time", shown(text)));
    }
    let days = days_from_civil(year, month as u32, day as u32);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(Instant { seconds, nanos })
}

/// [`parse`], and the time must not be later than now (with
/// [`CLOCK_SKEW_SECONDS`] of slack): a decision dated in the future would
/// outrank every real one made before that day.
pub fn parse_past(text: &str) -> Result<Instant, String> {
    let instant = parse(text)?;
    let now = now_seconds();
    if instant.seconds > now + CLOCK_SKEW_SECONDS {
        return Err(format!(
            "`{}` is in the future (this machine's clock says {})",
            shown(text),
            format(now)
        ));
    }
    Ok(instant)
}

fn shown(text: &str) -> String {
    crate::text_normal::shown(text, 40)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        for days in [-800_000, -1, 0, 59, 11_016, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn times_are_parsed_as_written_and_ordered_by_instant() {
        let utc = parse("2026-01-01T10:00:00Z").expect("utc");
        assert_eq!(format(utc.seconds), "2026-01-01T10:00:00Z");
        let offset = parse("2026-01-01T11:30:00+01:30").expect("offset");
        assert_eq!(offset, utc, "the same instant in another zone");
        let fraction = parse("2026-01-01T10:00:00.25Z").expect("fraction");
        assert!(fraction > utc && fraction.nanos == 250_000_000);
        assert!(
            parse("1999-12-31T23:00:00-02:00").expect("y2k")
                > parse("2000-01-01T00:00:00Z").expect("y2k")
        );
        for bad in [
            "not-a-time",
            "",
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+0100",
            "2026-01-01T00:00:00Z trailing",
            "２026-01-01T00:00:00Z",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn the_future_is_refused_beyond_the_clock_skew() {
        assert!(parse_past("9999-12-31T23:59:59Z").is_err());
        let soon = format(now_seconds() + CLOCK_SKEW_SECONDS - 5);
        assert!(parse_past(&soon).is_ok(), "within the skew");
        let later = format(now_seconds() + CLOCK_SKEW_SECONDS + 60);
        let error = parse_past(&later).expect_err("beyond the skew");
        assert!(error.contains("in the future"), "{error}");
    }
}
