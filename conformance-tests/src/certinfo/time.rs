//! GeneralizedTime (`YYYYMMDDHHMMSSZ`) as `cert.validFrom` / `cert.validTo` write it: parsing
//! to and formatting from seconds since the Unix epoch.

/// Seconds since the epoch of a GeneralizedTime string `YYYYMMDDHHMMSSZ`.
pub fn parse_generalized_time(s: &str) -> Result<u64, String> {
    let b = s.as_bytes();
    let shape = b.len() == 15
        && b.get(..14)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && b.get(14) == Some(&b'Z');
    if !shape {
        return Err(format!("{s:?} is not a GeneralizedTime YYYYMMDDHHMMSSZ"));
    }
    let num = |r: std::ops::Range<usize>| -> u16 {
        s.get(r)
            .and_then(|d| d.parse::<u16>().ok())
            .unwrap_or(u16::MAX)
    };
    let small = |r: std::ops::Range<usize>| u8::try_from(num(r)).unwrap_or(u8::MAX);
    der::DateTime::new(
        num(0..4),
        small(4..6),
        small(6..8),
        small(8..10),
        small(10..12),
        small(12..14),
    )
    .map(|t| t.unix_duration().as_secs())
    .map_err(|_| format!("{s:?} is not a valid date and time (years 1970-9999)"))
}

/// A Unix time as `YYYYMMDDHHMMSSZ`.
pub fn generalized_time(unix: u64) -> String {
    match der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix)) {
        Ok(t) => format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minutes(),
            t.seconds()
        ),
        Err(_) => format!("(Unix time {unix})"),
    }
}
