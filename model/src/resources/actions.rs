//! Actions: what a resource may be told to do (`create`, `start`, ...), one
//! enum per resource type, declared with [`actions!`](crate::actions) beside
//! its spec. Recipes, notifications and run reports keep the names as
//! written; the enum is what a provider matches on, exhaustively, so an
//! action its type does not have cannot slip through as "unchanged".

use std::fmt;
use std::str::FromStr;

/// The actions of one resource type.
pub trait Action:
    Copy + Eq + fmt::Debug + fmt::Display + FromStr<Err = UnknownAction> + Send + Sync + 'static
{
    /// Every action, in the order the documentation lists them.
    const ALL: &'static [Self];
    /// Their names as recipes and reports write them, in the order of `ALL`.
    const NAMES: &'static [&'static str];

    fn as_str(self) -> &'static str;
}

/// A name that is none of a type's actions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no action {action:?} (it has {})", .valid.join(", "))]
pub struct UnknownAction {
    pub action: String,
    /// The names the type has.
    pub valid: &'static [&'static str],
}

/// Declare a resource type's actions: an enum with [`Action`], `FromStr`
/// and `Display` by the names given.
///
/// ```
/// cm_model::actions! {
///     /// What a `door` may be told to do.
///     pub enum DoorAction {
///         Open = "open",
///         Close = "close",
///         Nothing = "nothing",
///     }
/// }
/// assert_eq!("open".parse::<DoorAction>(), Ok(DoorAction::Open));
/// assert_eq!(DoorAction::Close.to_string(), "close");
/// ```
#[macro_export]
macro_rules! actions {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $crate::resources::Action for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            const NAMES: &'static [&'static str] = &[$($text),+];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::resources::UnknownAction;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::resources::UnknownAction {
                        action: s.to_string(),
                        valid: <$name as $crate::resources::Action>::NAMES,
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($crate::resources::Action::as_str(*self))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::actions! {
        /// A test type's actions.
        pub enum LampAction {
            On = "on",
            Off = "off",
        }
    }

    #[test]
    fn names_round_trip_and_strangers_are_refused_with_the_list() {
        for a in LampAction::ALL {
            assert_eq!(a.as_str().parse::<LampAction>(), Ok(*a));
        }
        assert_eq!(LampAction::NAMES, ["on", "off"]);
        let e = "dim".parse::<LampAction>().unwrap_err();
        assert_eq!(e.to_string(), "no action \"dim\" (it has on, off)");
    }
}
