//! Pinned workers stay on their core (Linux: read from /proc what the kernel enforces).
#![cfg(target_os = "linux")]

use tokengate::{current_worker, Operation, Runtime, Weight};

/// The calling thread's allowed CPUs, as the kernel lists them ("0", "0-3", …).
fn cpus_allowed_list() -> String {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The CPU the calling thread last ran on (field 39 of /proc/thread-self/stat).
fn last_cpu() -> usize {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // The command name (field 2) may contain spaces; fields after it are plain.
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm
        .split_whitespace()
        .nth(36)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn smoke() {
    assert!(!cpus_allowed_list().is_empty());
}

#[test]
fn pinned_workers_stay_on_their_core() {
    let cores: Vec<usize> = core_ids();
    if cores.len() < 2 {
        eprintln!("skipped: fewer than 2 cores available");
        return;
    }
    // Weight::Heavy only on worker 0 and Light only on worker 1: one task stream per worker.
    let rt = Runtime::builder()
        .cores(cores[..2].iter().copied())
        .lane_workers(Weight::Heavy, [0])
        .lane_workers(Weight::Light, [1])
        .build()
        .unwrap();
    const ON_0: Operation = Operation::new("on0").weight(Weight::Heavy);
    const ON_1: Operation = Operation::new("on1").weight(Weight::Light);
    let mut handles = Vec::new();
    for round in 0..200u64 {
        for op in [&ON_0, &ON_1] {
            handles.push(rt.submit(op, move || {
                let mut x = round;
                for _ in 0..20_000 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                (current_worker().unwrap(), cpus_allowed_list(), last_cpu())
            }));
        }
        if round % 20 == 0 {
            std::thread::yield_now();
        }
    }
    for h in handles {
        let (worker, allowed, cpu) = h.join().unwrap();
        assert_eq!(
            allowed,
            cores[worker].to_string(),
            "worker {worker} may run elsewhere"
        );
        assert_eq!(cpu, cores[worker], "worker {worker} ran on cpu {cpu}");
    }
}

/// The cores this process may run on, from the kernel's own list.
fn core_ids() -> Vec<usize> {
    let list = cpus_allowed_list();
    let mut ids = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => ids.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => ids.push(part.parse().unwrap()),
        }
    }
    ids
}
