//! The cores this process may run on.

/// The ids of the cores the process may run on (its affinity mask), ascending, or `None` if
/// the platform does not say.
pub(crate) fn available_cores() -> Option<Vec<usize>> {
    #[cfg(not(loom))]
    {
        let mut ids: Vec<usize> = core_affinity::get_core_ids()?
            .into_iter()
            .map(|c| c.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        (!ids.is_empty()).then_some(ids)
    }
    #[cfg(loom)]
    {
        None
    }
}

/// How many threads the process can run in parallel (at least 1).
pub(crate) fn parallelism() -> usize {
    available_cores()
        .map(|c| c.len())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
}

/// Pins the calling thread to core `id`; returns whether the OS accepted.
pub(crate) fn pin_current_thread(id: usize) -> bool {
    #[cfg(not(loom))]
    {
        core_affinity::set_for_current(core_affinity::CoreId { id })
    }
    #[cfg(loom)]
    {
        let _ = id;
        false
    }
}
