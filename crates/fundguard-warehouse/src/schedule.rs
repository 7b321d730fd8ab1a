//! When scheduled rules run, and for which business date.
//!
//! A D+1 check that fires at 02:30 on the 26th checks the 25th: the business date
//! (`{{ ds }}`) is the day before the fire time, both read in the rule's time zone. The
//! scheduler never reads the clock itself — it is handed `now` — so catch-up after
//! downtime and daylight-saving edges are tested with an injected clock.

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use fundguard_rules::{CatchUp, Schedule};

/// The business date a run fired at `fire` checks: the previous day in the schedule's zone.
pub fn business_date(schedule: &Schedule, fire: DateTime<Utc>) -> NaiveDate {
    let local = fire.with_timezone(&schedule.timezone).date_naive();
    local.checked_sub_days(Days::new(1)).unwrap_or(local)
}

/// The end of business date `ds` in `zone` (the next local midnight): when the day's data
/// is complete, and so the event time of its findings.
pub fn end_of_day(ds: NaiveDate, zone: chrono_tz::Tz) -> DateTime<Utc> {
    let next = ds.checked_add_days(Days::new(1)).unwrap_or(ds);
    let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default();
    // A zone whose clocks skip midnight on that day: the first instant after it.
    zone.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// The next fire time strictly after `after`, if the pattern has one.
pub fn next_fire(schedule: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(&schedule.timezone);
    schedule.cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
}

/// The latest fire time after `after` and no later than `now`.
pub fn last_fire(schedule: &Schedule, after: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&schedule.timezone);
    let last = schedule.cron.find_previous_occurrence(&local, true).ok()?.with_timezone(&Utc);
    (last > after).then_some(last)
}

/// The fire times due at `now`, oldest first.
///
/// `last` is the last fire time that ran (from the run log); `None` on a rule's first
/// start, which runs nothing until its first fire time comes (no backfill of history — use
/// `fundguard sql run --from`). Missed fire times between `last` and `now` follow the
/// rule's catch-up setting; at most `limit` of the newest are returned.
pub fn due(
    schedule: &Schedule,
    catch_up: CatchUp,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<DateTime<Utc>> {
    let Some(last) = last else { return Vec::new() };
    let mut fired = Vec::new();
    let mut at = last;
    while let Some(next) = next_fire(schedule, at) {
        if next > now {
            break;
        }
        fired.push(next);
        at = next;
        // Keep only the newest `limit`; a minutely rule down for a year is not a year of runs.
        if fired.len() > limit {
            fired.remove(0);
        }
    }
    match catch_up {
        CatchUp::All => fired,
        CatchUp::Latest => fired.pop().into_iter().collect(),
        // Only a fire time in the last scheduler tick counts as on time.
        CatchUp::Skip => fired.pop().into_iter().filter(|t| now - *t < chrono::Duration::minutes(1)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn schedule(pattern: &str, zone: &str) -> Schedule {
        Schedule {
            cron: croner::Cron::from_str(pattern).unwrap(),
            timezone: chrono_tz::Tz::from_str(zone).unwrap(),
            text: pattern.into(),
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_business_date_is_the_day_before_in_the_rules_zone() {
        let s = schedule("30 2 * * *", "Asia/Shanghai");
        // 02:30 in Shanghai on the 26th is 18:30 UTC on the 25th.
        let fire = next_fire(&s, utc("2026-11-25T12:00:00Z")).unwrap();
        assert_eq!(fire, utc("2026-11-25T18:30:00Z"));
        assert_eq!(business_date(&s, fire).to_string(), "2026-11-25");
        assert_eq!(end_of_day(business_date(&s, fire), s.timezone), utc("2026-11-25T16:00:00Z"));
    }

    #[test]
    fn missed_runs_are_caught_up_as_configured() {
        let s = schedule("0 3 * * *", "UTC");
        let last = utc("2026-11-20T03:00:00Z");
        let now = utc("2026-11-24T05:00:00Z");
        let all = due(&s, CatchUp::All, Some(last), now, 100);
        assert_eq!(
            all,
            ["2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24"].map(|d| utc(&format!("{d}T03:00:00Z")))
        );
        assert_eq!(due(&s, CatchUp::Latest, Some(last), now, 100), [utc("2026-11-24T03:00:00Z")]);
        assert!(due(&s, CatchUp::Skip, Some(last), now, 100).is_empty());
        assert_eq!(due(&s, CatchUp::Skip, Some(last), utc("2026-11-24T03:00:30Z"), 100).len(), 1);
        assert_eq!(due(&s, CatchUp::All, Some(last), now, 2).len(), 2);
        assert!(due(&s, CatchUp::All, None, now, 100).is_empty(), "a new rule waits for its first fire time");
        assert!(due(&s, CatchUp::All, Some(utc("2026-11-24T03:00:00Z")), now, 100).is_empty());
        assert_eq!(last_fire(&s, last, now), Some(utc("2026-11-24T03:00:00Z")));
        assert_eq!(last_fire(&s, utc("2026-11-24T03:00:00Z"), now), None);
    }

    #[test]
    fn daylight_saving_days_fire_once() {
        // New York falls back on 2026-11-01: 01:30 happens twice, the rule fires once.
        let s = schedule("30 1 * * *", "America/New_York");
        let fires = due(&s, CatchUp::All, Some(utc("2026-10-31T12:00:00Z")), utc("2026-11-02T12:00:00Z"), 100);
        assert_eq!(fires.len(), 2, "{fires:?}");
        let dates: Vec<String> = fires.iter().map(|f| business_date(&s, *f).to_string()).collect();
        assert_eq!(dates, ["2026-10-31", "2026-11-01"]);
    }
}
