//! Work the module does while nothing happens: evaluations per second with no file open,
//! and with one file whose threshold is far away.

use std::io;
use std::time::Duration;

use crate::cost::far_used;
use crate::device;
use crate::report::Figure;
use crate::stats::median;
use crate::sys;

/// Evaluations per second over `windows` windows of `window` each.
fn rates(windows: usize, window: Duration) -> io::Result<Vec<f64>> {
    let mut rates = Vec::with_capacity(windows);
    for _ in 0..windows {
        let (e1, t1) = (device::stat("evaluations")?, sys::now_ns());
        std::thread::sleep(window);
        let (e2, t2) = (device::stat("evaluations")?, sys::now_ns());
        rates.push(e2.saturating_sub(e1) as f64 * 1e9 / (t2 - t1) as f64);
    }
    Ok(rates)
}

pub fn idle(windows: usize, window: Duration) -> Vec<Figure> {
    let secs = window.as_secs_f64();
    let none = (|| -> io::Result<Vec<f64>> {
        // A run queued before the last close still fires once (and stops, uncounted).
        std::thread::sleep(Duration::from_millis(1500));
        let clients = device::stat("clients")?;
        if clients != 0 {
            return Err(io::Error::other(format!("{clients} files are open")));
        }
        rates(windows, window)
    })();
    let far = (|| -> io::Result<(Vec<f64>, u64)> {
        let fd = device::open()?;
        let total = device::sample(&fd)?
            .figures
            .get(memnotify_proto::Figure::Total);
        device::arm(&fd, &far_used(total, 0))?;
        std::thread::sleep(Duration::from_millis(2500));
        let rates = rates(windows, window)?;
        Ok((rates, device::stat("interval_ms")?))
    })();
    vec![
        match none {
            Ok(rates) => Figure::new(
                "idle_wakeups_per_s_no_clients",
                median(&rates),
                "per_s",
                rates.len(),
                format!("evaluations counter over {windows} windows of {secs} s with no file open; median"),
            ),
            Err(error) => Figure::missing("idle_wakeups_per_s_no_clients", "per_s", format!("failed: {error}")),
        },
        match far {
            Ok((rates, interval)) => Figure::new(
                "idle_wakeups_per_s_far",
                median(&rates),
                "per_s",
                rates.len(),
                format!("one file armed at used=90% of RAM; {windows} windows of {secs} s; median; interval_ms {interval} (slow_ms)"),
            ),
            Err(error) => Figure::missing("idle_wakeups_per_s_far", "per_s", format!("failed: {error}")),
        },
    ]
}
