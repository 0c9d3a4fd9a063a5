//! `cargo xtask soak --arch A --swap S [--debug] [--seconds N]`: the long versions of the
//! reliability scenarios (qemu/scenarios/reliability.yaml) on one cell, each in a fresh
//! guest, ending with a summary: inputs tried, faults injected, splats found, leaks.
//!
//! `--seconds` is the guest fuzzer's time (default 600); the other loops are sized to
//! run for minutes each: 100,000 open/close cycles, 40 rmmod rounds under racing
//! clients, 20 rounds of hostile socket clients, and without swap 5 OOM kills by
//! memnotifyd and 5 by the kernel.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::scenario::{self, Scenario};
use crate::util::target_dir;
use crate::{image, Cell};

/// The soak scenarios, with the fuzzer's time filled in.
fn scenarios(fuzz_seconds: u64) -> Result<Vec<Scenario>> {
    let text = SOAK_YAML
        .replace("@FUZZ_SECONDS@", &fuzz_seconds.to_string())
        .replace("@FUZZ_TIMEOUT@", &(fuzz_seconds * 2 + 120).to_string());
    scenario::parse(&text, Path::new("xtask/src/soak.rs"))
}

const SOAK_YAML: &str = r#"
- name: soak-fuzz
  description: the guest fuzzer for a long time, then the device must still work
  steps:
    - run: mn-probe fuzz --seconds @FUZZ_SECONDS@
      expect: '^fuzz: 0 mismatches; the device still answers$'
      reject: MISMATCH
      timeout: @FUZZ_TIMEOUT@
    - run: echo "clients $(cat /sys/class/misc/memnotify/statistics/clients) refcount $(awk '$1 == "memnotify" {print $3}' /proc/modules)"
      expect: '^clients 0 refcount 0$'

- name: soak-churn
  description: 100,000 open/close cycles; slab and the module refcount back at their baseline
  steps:
    - run: |
        refs() { awk '$1 == "memnotify" {print $3}' /proc/modules; }
        slab() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
        mn-probe open-many 1000 "used 1G" > /dev/null || exit 1
        wait_for '[ "$(refs)" = 0 ]' 30
        r0=$(refs); s0=$(slab)
        i=0
        while [ $i -lt 100 ]; do
          mn-probe open-many 1000 "used 1G active 512M hysteresis 1M" > /dev/null || exit 1
          i=$((i + 1))
        done
        wait_for '[ "$(refs)" = 0 ]' 30
        # Files are freed after an RCU grace period: slab comes back within a minute or
        # leaked. KASAN's quarantine (debug kernel) holds freed objects back: kmemleak
        # checks there.
        if [ ! -e /sys/kernel/debug/kmemleak ]; then
          wait_for '[ $(($(slab) - s0)) -lt 512 ]' 60 || echo "LEAK: slab grew"
        fi
        r1=$(refs); s1=$(slab)
        echo "churn: 100000 cycles: refcount $r0 -> $r1, slab $s0 -> $s1 kB"
        test "$r0" = 0 && test "$r1" = 0 || echo "LEAK: the module refcount did not return"
      expect: '^churn: 100000 cycles: refcount 0 -> 0'
      reject: '^LEAK'
      timeout: 2400

- name: soak-races
  description: 40 rounds of rmmod while three clients race to open
  module: unloaded
  steps:
    - run: |
        total=0
        round=0
        while [ $round -lt 40 ]; do
          round=$((round + 1))
          insmod /lib/modules/memnotify.ko || { echo "insmod failed in round $round"; exit 1; }
          rm -f /tmp/racing
          for racer in 1 2 3; do mn-probe race-open 2 --ready /tmp/racing >> /tmp/racers & done
          # rmmod must meet the racers: wait until one has opened the device.
          wait_for '[ -e /tmp/racing ]' 60 || { wait; cat /tmp/racers; exit 1; }
          tries=0
          until rmmod memnotify 2>/dev/null; do
            tries=$((tries + 1))
            if [ $tries -gt 5000 ]; then echo "rmmod never got through"; wait; exit 1; fi
          done
          wait
          if grep FAIL /tmp/racers; then exit 1; fi
          total=$((total + tries))
        done
        echo "races: 40 rounds, $total busy rmmod attempts"
        awk '{opens += $2; gone += $4} END {print "racers: " opens " opens, " gone " while gone"}' /tmp/racers
        insmod /lib/modules/memnotify.ko && cat /dev/memnotify
      expect: ['^races: 40 rounds, \d+ busy rmmod attempts$', '^used \d+ active']
      timeout: 900

- name: soak-socket
  description: 20 rounds of other users, garbage, stalled, vanished and too many clients on memnotifyd's socket
  steps:
    - run: |
        printf 'socket: { path: /run/soak.sock }\nlevels:\n  - name: low\n    enter: { available: 5%% }\n' > /tmp/soak.yaml
        memnotifyd --config /tmp/soak.yaml --pidfile /run/soak.pid 2> /tmp/soak.log &
        daemon=$!
        wait_for --while $daemon '[ -s /run/soak.pid ]' 60 || { cat /tmp/soak.log; exit 1; }
        i=0
        while [ $i -lt 20 ]; do
          mn-probe daemon-socket /run/soak.sock > /tmp/round.out || { cat /tmp/round.out; exit 1; }
          i=$((i + 1))
        done
        echo "socket: 20 rounds passed"
        kill -0 $daemon && echo "daemon alive"
        kill -TERM $daemon
        wait $daemon
      expect: ['^socket: 20 rounds passed$', '^daemon alive$']
      timeout: 600

- name: soak-oom
  description: five loads beyond RAM stopped by memnotifyd's kill stage, five by the kernel's OOM killer; memnotifyd and the device survive each
  applies: { swap: [off] }
  steps:
    - run: |
        printf 'socket: { path: /run/oom.sock }\nlevels:\n  - name: critical\n    enter: { available: 12%% }\n    leave: { available: 20%% }\n    stages:\n      - action: kill\nkill:\n  prefer: ["^memhog$"]\n  grace: 2s\n' > /tmp/kill.yaml
        printf 'socket: { path: /run/oom.sock }\nlevels:\n  - name: critical\n    enter: { available: 12%% }\n    leave: { available: 20%% }\n' > /tmp/log.yaml
        for config in kill log; do
          memnotifyd --config /tmp/$config.yaml --pidfile /run/oom.pid 2> /tmp/$config.log &
          daemon=$!
          wait_for --while $daemon '[ -s /run/oom.pid ]' 60 || { cat /tmp/$config.log; exit 1; }
          i=0
          while [ $i -lt 5 ]; do
            if [ $config = kill ]; then rate=32M/s; else rate=64M/s; fi
            memhog --rate $rate --limit 400M --hold forever > /dev/null
            echo "oom: $config round $i: memhog exit $?"
            # Back from the OOM killer: the daemon's level falls back to normal.
            wait_for 'memnotify query --socket /run/oom.sock | grep -q "\"level\":\"normal\""' 60 || { echo "QUERY FAILED"; exit 1; }
            head -c 4 /dev/memnotify > /dev/null || { echo "DEVICE FAILED"; exit 1; }
            i=$((i + 1))
          done
          kill -0 $daemon && echo "oom: daemon alive after the $config rounds"
          kill -TERM $daemon
          wait $daemon
        done
      expect: ['^oom: daemon alive after the kill rounds$', '^oom: daemon alive after the log rounds$']
      reject: ['FAILED', 'memhog exit 0']
      timeout: 600
"#;

/// Figures pulled out of the console logs.
#[derive(Default, Debug, PartialEq)]
struct Tally {
    inputs: u64,
    faults: u64,
}

/// The numbers of the first line that starts with `prefix` and contains `containing`,
/// in order (`fuzz: 12 writes (3 accepted…)` → 12, 3, …).
fn numbers_after(text: &str, prefix: &str, containing: &str) -> Option<Vec<u64>> {
    let line = text
        .lines()
        .find(|line| line.starts_with(prefix) && line.contains(containing))?;
    Some(
        line[prefix.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|word| word.parse().ok())
            .collect(),
    )
}

/// Counts the inputs and faults a soak scenario's console shows.
fn tally(name: &str, console: &str) -> Tally {
    let mut tally = Tally::default();
    match name {
        "soak-fuzz" => {
            // writes, accepted, rejected, reads, preads, faulting buffers, polls, events,
            // SIGIO, toggles, opens, closes under poll, hog cycles, seconds.
            if let Some(n) = numbers_after(console, "fuzz: ", " writes ").filter(|n| n.len() >= 12)
            {
                tally.inputs = n[0] + n[3] + n[4] + n[6] + n[9] + n[10];
                tally.faults = n[5] + n[11];
            }
        }
        "soak-churn" if console.contains("churn: 100000 cycles") => tally.inputs = 100_000,
        "soak-races" => {
            if let Some(n) = numbers_after(console, "racers: ", " opens") {
                tally.inputs = n.first().copied().unwrap_or(0);
                tally.faults = n.get(1).copied().unwrap_or(0);
            }
            if let Some(n) = numbers_after(console, "races: ", " rounds") {
                tally.faults += n.get(1).copied().unwrap_or(0);
            }
        }
        // Per round: four queries, and one foreign user, garbage, a long line, a stalled,
        // 8 vanished, an idle and 64 flooding clients.
        "soak-socket" if console.contains("socket: 20 rounds passed") => {
            tally.inputs = 20 * 4;
            tally.faults = 20 * 77;
        }
        "soak-oom" => {
            tally.faults = console
                .lines()
                .filter(|line| line.starts_with("oom: ") && line.contains("memhog exit 1"))
                .count() as u64;
        }
        _ => {}
    }
    tally
}

pub fn soak(cell: Cell, fuzz_seconds: u64) -> Result<()> {
    let start = Instant::now();
    let image = image::build(cell, None, None)?;
    let mut total = Tally::default();
    let (mut splats, mut leaks, mut failed) = (0, 0, Vec::new());
    let mut runs = 0;
    for scenario in scenarios(fuzz_seconds)? {
        if let Some(reason) = scenario.skip_reason(cell) {
            eprintln!("--- skip {} on {cell}: {reason}", scenario.name);
            continue;
        }
        eprintln!("--- {} on {cell}: {}", scenario.name, scenario.description);
        let log = target_dir().join(format!("soak/{}/{}.log", cell.name(), scenario.name));
        let scenario_start = Instant::now();
        let result = scenario::run_one(cell, &image, &scenario, &log);
        runs += 1;
        let console = std::fs::read_to_string(&log).unwrap_or_default();
        let tally = tally(&scenario.name, &console);
        total.inputs += tally.inputs;
        total.faults += tally.faults;
        match result {
            Ok(()) => eprintln!(
                "pass {} ({:.0}s): {} inputs, {} faults",
                scenario.name,
                scenario_start.elapsed().as_secs_f64(),
                tally.inputs,
                tally.faults
            ),
            Err(error) => {
                let message = format!("{error:#}");
                eprintln!("FAIL {}: {message}", scenario.name);
                if message.contains("kernel splat") {
                    splats += 1;
                }
                if message.starts_with("kmemleak")
                    || console.lines().any(|line| line.starts_with("LEAK"))
                {
                    leaks += 1;
                }
                failed.push(scenario.name.clone());
            }
        }
    }
    println!(
        "soak {cell}: {runs} scenarios in {:.0} min: {} inputs tried, {} faults injected, \
         {splats} splats found, {leaks} leaks{}",
        start.elapsed().as_secs_f64() / 60.0,
        total.inputs,
        total.faults,
        if cell.debug {
            " (kmemleak scanned)"
        } else {
            " (slab and refcount; kmemleak needs --debug)"
        }
    );
    if !failed.is_empty() {
        bail!("soak failed: {} (logs in target/soak/)", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soak_scenarios_parse() {
        let scenarios = scenarios(600).unwrap();
        let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "soak-fuzz",
                "soak-churn",
                "soak-races",
                "soak-socket",
                "soak-oom"
            ]
        );
        assert_eq!(scenarios[0].steps[0].timeout, Some(1320));
        assert!(scenarios[0].steps[0].run.contains("--seconds 600"));
    }

    #[test]
    fn tallies_come_from_the_console() {
        let fuzz = "fuzz: seed 1, 20 s\nfuzz: 100 writes (60 accepted, 40 rejected), 1000 reads, \
                    2000 preads, 10 faulting buffers, 30 polls, 5 events, 2 SIGIO, 7 SIGIO toggles, \
                    8 opens, 4 closes under poll, 3 hog cycles in 20.1 s\n";
        assert_eq!(
            tally("soak-fuzz", fuzz),
            Tally {
                inputs: 100 + 1000 + 2000 + 30 + 7 + 8,
                faults: 10 + 4
            }
        );
        let races = "races: 40 rounds, 17 busy rmmod attempts\nracers: 500 opens, 9 while gone\n";
        assert_eq!(
            tally("soak-races", races),
            Tally {
                inputs: 500,
                faults: 9 + 17
            }
        );
        let oom = "oom: kill round 0: memhog exit 143\noom: log round 0: memhog exit 137\n";
        assert_eq!(tally("soak-oom", oom).faults, 2);
        assert_eq!(tally("soak-churn", "nothing"), Tally::default());
    }
}
