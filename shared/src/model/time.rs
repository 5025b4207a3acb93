//! Instants with millisecond precision and the API's two spellings of them:
//! objects show `2019-01-23 13:32:30.163Z`, envelopes `2018-01-19T11:55:07.552Z`.
//! Filters accept either, or any ISO 8601 / RFC 3339 date-time.

use std::fmt;

use serde::{Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Timestamp(i64);

/// The text was not a date-time in a format the API accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a date-time such as 2019-01-23T13:32:30.163Z or 2019-01-23 13:32:30.163Z")]
pub struct MalformedDate;

/// The largest instant we store (9999-12-31T23:59:59.999Z): keeps sort keys 13 digits wide.
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn from_millis(millis: i64) -> Self {
        Self(millis.clamp(0, MAX_MILLIS))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    fn datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// `2019-01-23 13:32:30.163Z`: how objects show dates.
    pub fn object_format(self) -> String {
        let fmt = format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        self.datetime().format(fmt).unwrap_or_default()
    }

    /// `2018-01-19T11:55:07.552Z`: how envelopes show their timestamp.
    pub fn envelope_format(self) -> String {
        let fmt = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        self.datetime().format(fmt).unwrap_or_default()
    }

    /// Parses a filter's date value: RFC 3339 (`T` or space, any offset, any
    /// fraction), the object format, or a plain date (midnight UTC).
    pub fn parse(text: &str) -> Result<Self, MalformedDate> {
        let text = text.trim();
        if text.len() < 10 || text.len() > 40 {
            return Err(MalformedDate);
        }
        if !text.is_char_boundary(10) {
            return Err(MalformedDate);
        }
        let normalized = match text.as_bytes().get(10) {
            None => text.to_owned(),
            Some(b' ' | b'T' | b't') => format!("{}T{}", &text[..10], &text[11..]),
            Some(_) => return Err(MalformedDate),
        };
        let instant = if let Ok(dt) = OffsetDateTime::parse(&normalized, &Rfc3339) {
            dt
        } else if normalized.len() == 10 {
            let date = time::Date::parse(&normalized, format_description!("[year]-[month]-[day]"))
                .map_err(|_| MalformedDate)?;
            date.midnight().assume_utc()
        } else {
            // A date-time without an offset is UTC.
            let fmt = format_description!(
                "[year]-[month]-[day]T[hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
            );
            PrimitiveDateTime::parse(&normalized, fmt)
                .map_err(|_| MalformedDate)?
                .assume_offset(UtcOffset::UTC)
        };
        let millis = instant.unix_timestamp_nanos().div_euclid(1_000_000);
        if !(0..=MAX_MILLIS as i128).contains(&millis) {
            return Err(MalformedDate);
        }
        Ok(Self(millis as i64))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.object_format())
    }
}

/// Objects serialize their dates in the object format.
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.object_format())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: i64 = 1_548_250_350_163; // 2019-01-23 13:32:30.163Z

    #[test]
    fn formats_like_the_reference() {
        let t = Timestamp::from_millis(REFERENCE);
        assert_eq!(t.object_format(), "2019-01-23 13:32:30.163Z");
        assert_eq!(t.envelope_format(), "2019-01-23T13:32:30.163Z");
        assert_eq!(
            Timestamp::from_millis(0).object_format(),
            "1970-01-01 00:00:00.000Z"
        );
    }

    #[test]
    fn parses_both_formats_offsets_and_plain_dates() {
        for text in [
            "2019-01-23 13:32:30.163Z",
            "2019-01-23T13:32:30.163Z",
            "2019-01-23T14:32:30.163+01:00",
            "2019-01-23T13:32:30.163",
        ] {
            assert_eq!(
                Timestamp::parse(text),
                Ok(Timestamp::from_millis(REFERENCE)),
                "{text}"
            );
        }
        assert_eq!(
            Timestamp::parse("2019-01-23").unwrap().object_format(),
            "2019-01-23 00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::parse("2019-01-23T13:32:30Z").unwrap().millis(),
            REFERENCE - 163
        );
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        for bad in [
            "",
            "yesterday",
            "2019-13-01",
            "2019-01-23X13:32:30Z",
            "1548250350163",
            "1900-01-01T00:00:00Z",
        ] {
            assert_eq!(Timestamp::parse(bad), Err(MalformedDate), "{bad:?}");
        }
    }

    #[test]
    fn now_round_trips_through_both_formats() {
        let now = Timestamp::now();
        assert_eq!(Timestamp::parse(&now.object_format()), Ok(now));
        assert_eq!(Timestamp::parse(&now.envelope_format()), Ok(now));
    }
}
