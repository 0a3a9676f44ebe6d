//! An idle runtime parks its workers: it uses (almost) no CPU. Its own test binary, so that no
//! other test's threads run meanwhile.
#![cfg(target_os = "linux")]

use std::time::Duration;

use tokengate::Runtime;

/// CPU time (user + system, in clock ticks) used so far by this process's tokengate workers.
fn worker_cpu_ticks() -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = entry.unwrap().path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        let comm_end = stat.rfind(')').unwrap();
        // The kernel keeps the first 15 bytes of a thread's name.
        if !stat[..comm_end].contains("tokengate-work") {
            continue;
        }
        let fields: Vec<&str> = stat[comm_end + 2..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name.
        total += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    total
}

#[test]
fn an_idle_runtime_uses_almost_no_cpu() {
    let rt = Runtime::builder().workers(2).pin(false).build().unwrap();
    // Work first, so the workers have been busy and spinning.
    let hs: Vec<_> = (0..50_000u64).map(|i| rt.spawn(move || i * 2)).collect();
    for h in hs {
        h.join().unwrap();
    }
    let busy = worker_cpu_ticks();
    assert!(
        busy > 0,
        "the workers did run: their CPU time must show (ticks {busy})"
    );
    // Let the spin-then-yield budget run out, then measure one idle second.
    std::thread::sleep(Duration::from_millis(100));
    let before = worker_cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = worker_cpu_ticks() - before;
    // One tick is 1/100 s on Linux: 2 ticks over 1 s for two workers is 1% of one core.
    assert!(
        used <= 2,
        "idle workers used {used} ticks of CPU in one second"
    );
    drop(rt);
}
