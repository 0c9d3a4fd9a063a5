//! When the stages of the current level are due (pure, times in milliseconds).

use crate::config::Stage;

/// The pending stages of the level last entered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Due time of each stage of the level, `None` once run (and not repeating).
    due: Vec<Option<u64>>,
}

impl Schedule {
    /// An empty schedule with room for `capacity` stages, so that entering a
    /// level later does not allocate.
    pub fn with_capacity(capacity: usize) -> Schedule {
        Schedule {
            due: Vec::with_capacity(capacity),
        }
    }

    /// Starts the stages of a level entered at `now_ms`.
    pub fn enter(&mut self, stages: &[Stage], now_ms: u64) {
        self.due.clear();
        self.due.extend(
            stages
                .iter()
                .map(|stage| Some(now_ms.saturating_add(stage.after.as_millis() as u64))),
        );
    }

    /// Drops every pending stage (the level was left).
    pub fn clear(&mut self) {
        self.due.clear();
    }

    /// The earliest due time, if any stage is pending.
    pub fn next_due(&self) -> Option<u64> {
        self.due.iter().flatten().copied().min()
    }

    /// The first stage due at `now_ms`, marked as run (or rescheduled if it repeats).
    /// Call until `None` to run everything that is due, in stage order.
    pub fn pop_due(&mut self, stages: &[Stage], now_ms: u64) -> Option<usize> {
        let index = self
            .due
            .iter()
            .position(|due| due.is_some_and(|due| due <= now_ms))?;
        self.due[index] = stages
            .get(index)
            .and_then(|stage| stage.repeat)
            .map(|repeat| now_ms.saturating_add(repeat.as_millis() as u64));
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Action;
    use std::time::Duration;

    fn stage(after_ms: u64, repeat_ms: Option<u64>, action: Action) -> Stage {
        Stage {
            after: Duration::from_millis(after_ms),
            repeat: repeat_ms.map(Duration::from_millis),
            action,
        }
    }

    #[test]
    fn stages_run_in_order_after_their_delays() {
        let stages = [
            stage(0, None, Action::Reclaim),
            stage(5000, Some(10_000), Action::Kill),
        ];
        let mut schedule = Schedule::with_capacity(4);
        schedule.enter(&stages, 1000);
        assert_eq!(schedule.next_due(), Some(1000));
        assert_eq!(schedule.pop_due(&stages, 1000), Some(0));
        assert_eq!(schedule.pop_due(&stages, 1000), None);
        assert_eq!(schedule.next_due(), Some(6000));
        assert_eq!(schedule.pop_due(&stages, 5999), None);
        assert_eq!(schedule.pop_due(&stages, 6000), Some(1));
        assert_eq!(schedule.next_due(), Some(16_000));
        assert_eq!(schedule.pop_due(&stages, 16_500), Some(1));
        assert_eq!(schedule.next_due(), Some(26_500));
        schedule.clear();
        assert_eq!(schedule.next_due(), None);
    }

    #[test]
    fn late_wakeups_run_everything_due() {
        let stages = [
            stage(100, None, Action::Log(String::new())),
            stage(200, None, Action::Reclaim),
            stage(300, None, Action::Kill),
        ];
        let mut schedule = Schedule::with_capacity(3);
        schedule.enter(&stages, 0);
        let mut run = Vec::new();
        while let Some(index) = schedule.pop_due(&stages, 250) {
            run.push(index);
        }
        assert_eq!(run, [0, 1]);
    }
}
