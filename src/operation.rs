//! Operations: the name and weight a task is tagged with.

use std::fmt;

/// How heavy an operation's tasks are. Decides the mailbox lane a task waits in (Light is taken
/// before Medium before Heavy) and, with [`Routing::Isolated`](crate::Routing::Isolated), which
/// workers may run it.
///
/// # Examples
///
/// ```
/// use tokengate::Weight;
/// assert_eq!(Weight::default(), Weight::Medium);
/// assert_eq!("heavy".parse::<Weight>(), Ok(Weight::Heavy));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Weight {
    /// Short, latency-sensitive work: taken first.
    Light = 0,
    /// The default.
    #[default]
    Medium = 1,
    /// Long CPU-bound work: taken last, but never starved.
    Heavy = 2,
}

impl Weight {
    /// All weights, in lane priority order.
    pub const ALL: [Weight; 3] = [Weight::Light, Weight::Medium, Weight::Heavy];

    /// The lane number, 0 (Light) to 2 (Heavy).
    #[inline]
    pub const fn lane(self) -> usize {
        self as usize
    }

    /// The lowercase name, as the Python original's `weight` tag spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Weight::Light => "light",
            Weight::Medium => "medium",
            Weight::Heavy => "heavy",
        }
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Weight`] from a string other than light, medium or heavy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseWeightError(String);

impl fmt::Display for ParseWeightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown weight {:?}: expected light, medium or heavy",
            self.0
        )
    }
}

impl std::error::Error for ParseWeightError {}

impl std::str::FromStr for Weight {
    type Err = ParseWeightError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "light" => Ok(Weight::Light),
            "medium" => Ok(Weight::Medium),
            "heavy" => Ok(Weight::Heavy),
            _ => Err(ParseWeightError(s.to_owned())),
        }
    }
}

/// A kind of task: a name and a [`Weight`]. Const-constructible, so operations are usually
/// declared once as constants.
///
/// # Examples
///
/// ```
/// use tokengate::{Operation, Weight};
///
/// const PRIME: Operation = Operation::new("prime_check").weight(Weight::Heavy);
/// assert_eq!(PRIME.name(), "prime_check");
/// assert_eq!(PRIME.get_weight(), Weight::Heavy);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Operation {
    name: &'static str,
    weight: Weight,
}

impl Operation {
    /// The operation of [`Runtime::spawn`](crate::Runtime::spawn): `"default"`, Medium.
    pub const DEFAULT: Operation = Operation::new("default");

    /// An operation named `name`, of weight Medium.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            weight: Weight::Medium,
        }
    }

    /// The same operation with weight `weight`.
    #[must_use]
    pub const fn weight(mut self, weight: Weight) -> Self {
        self.weight = weight;
        self
    }

    /// The operation's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The operation's weight.
    pub const fn get_weight(&self) -> Weight {
        self.weight
    }
}

impl Default for Operation {
    fn default() -> Self {
        Self::DEFAULT
    }
}
