#![cfg(loom)]
#[test]
fn t() { loom::model(|| { let q = tokengate::primitives::ArrayQueue::new(2); assert_eq!(q.push(1), Ok(())); }); }
