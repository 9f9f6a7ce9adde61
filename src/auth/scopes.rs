//! SMART App Launch scopes, version 2 (`patient/Observation.rs`, `user/*.cruds`,
//! `system/ImagingStudy.c`) and version 1 (`patient/Observation.read`, `user/*.write`,
//! `system/*.*`): which resource types and interactions a token covers, and whether only in its
//! patient's compartment (`patient/`). Scopes that narrow a grant with a query
//! (`patient/Observation.rs?category=laboratory`) grant nothing: the service does not evaluate
//! such conditions, and denies rather than grants too much. Other scopes (`openid`, `fhirUser`,
//! `launch/patient`, `offline_access`) carry no resource access and are kept as they are.

use crate::domain::ResourceType;

/// Whose data a scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Context {
    /// The patient in the token's context: their compartment only.
    Patient,
    /// What the user may see.
    User,
    /// A backend system, no user.
    System,
}

/// What a request does to a resource type (SMART v2's letters: c, r, u, d, s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Interaction {
    const ALL: [(char, Interaction); 5] = [
        ('c', Interaction::Create),
        ('r', Interaction::Read),
        ('u', Interaction::Update),
        ('d', Interaction::Delete),
        ('s', Interaction::Search),
    ];

    fn bit(self) -> u8 {
        match self {
            Interaction::Create => 1,
            Interaction::Read => 2,
            Interaction::Update => 4,
            Interaction::Delete => 8,
            Interaction::Search => 16,
        }
    }
}

/// One resource scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub context: Context,
    /// None: every resource type (`*`).
    pub resource: Option<ResourceType>,
    permissions: u8,
}

impl Scope {
    /// Reads one scope; None for one that grants no resource access here (not a resource
    /// scope, a resource type this service does not store, a malformed permission, a query).
    pub fn parse(text: &str) -> Option<Scope> {
        let (context, rest) = text.split_once('/')?;
        let context = match context {
            "patient" => Context::Patient,
            "user" => Context::User,
            "system" => Context::System,
            _ => return None,
        };
        if rest.contains('?') {
            return None;
        }
        let (resource, permissions) = rest.rsplit_once('.')?;
        let resource = match resource {
            "*" => None,
            name => Some(name.parse::<ResourceType>().ok()?),
        };
        let permissions = match permissions {
            // Version 1.
            "read" => Interaction::Read.bit() | Interaction::Search.bit(),
            "write" => {
                Interaction::Create.bit() | Interaction::Update.bit() | Interaction::Delete.bit()
            }
            "*" => 0b11111,
            // Version 2: a subset of c, r, u, d, s, in that order, each at most once.
            letters => {
                let mut bits = 0u8;
                let mut next = 0;
                for letter in letters.chars() {
                    let at = Interaction::ALL[next..]
                        .iter()
                        .position(|(l, _)| *l == letter)?;
                    bits |= Interaction::ALL[next + at].1.bit();
                    next += at + 1;
                }
                if bits == 0 {
                    return None;
                }
                bits
            }
        };
        Some(Scope {
            context,
            resource,
            permissions,
        })
    }

    fn covers(&self, resource: ResourceType, interaction: Interaction) -> bool {
        self.resource.is_none_or(|r| r == resource) && self.permissions & interaction.bit() != 0
    }
}

/// What a token's scopes allow for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Only within the token's patient's compartment.
    pub patient_only: bool,
}

/// A token's scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    pub resource: Vec<Scope>,
    /// Everything else the token said (`openid`, `fhirUser`, `launch/patient` …).
    pub other: Vec<String>,
}

impl Scopes {
    /// The space-separated `scope` of a token.
    pub fn parse(text: &str) -> Scopes {
        let mut scopes = Scopes::default();
        for token in text.split_ascii_whitespace() {
            match Scope::parse(token) {
                Some(scope) => scopes.resource.push(scope),
                None => scopes.other.push(token.to_owned()),
            }
        }
        scopes
    }

    /// Whether the scopes allow `interaction` on `resource`, and if so whether only in the
    /// patient's compartment: a user or system scope, when there is one, grants more.
    pub fn grant(&self, resource: ResourceType, interaction: Interaction) -> Option<Grant> {
        let covering = self
            .resource
            .iter()
            .filter(|s| s.covers(resource, interaction));
        covering
            .map(|s| Grant {
                patient_only: s.context == Context::Patient,
            })
            .min_by_key(|g| g.patient_only)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Interaction::*;
    use ResourceType::{Observation, Patient};

    #[test]
    fn version_2_letters_grant_their_interactions() {
        let scopes = Scopes::parse("patient/Observation.rs user/Patient.cu openid fhirUser");
        assert_eq!(
            scopes.grant(Observation, Read),
            Some(Grant { patient_only: true })
        );
        assert_eq!(
            scopes.grant(Observation, Search),
            Some(Grant { patient_only: true })
        );
        assert_eq!(scopes.grant(Observation, Create), None);
        assert_eq!(
            scopes.grant(Patient, Update),
            Some(Grant {
                patient_only: false
            })
        );
        assert_eq!(scopes.grant(Patient, Read), None);
        assert_eq!(scopes.other, ["openid", "fhirUser"]);
    }

    #[test]
    fn version_1_read_and_write_and_wildcards() {
        let scopes = Scopes::parse("user/Observation.read system/*.write");
        assert!(scopes.grant(Observation, Read).is_some());
        assert!(scopes.grant(Observation, Search).is_some());
        assert!(
            scopes.grant(Observation, Update).is_some(),
            "system/*.write"
        );
        assert!(scopes.grant(Patient, Read).is_none());
        let all = Scopes::parse("system/*.*");
        for interaction in [Create, Read, Update, Delete, Search] {
            assert!(all.grant(ResourceType::Claim, interaction).is_some());
        }
    }

    #[test]
    fn a_user_scope_grants_more_than_a_patient_one() {
        let scopes = Scopes::parse("patient/*.rs user/Observation.r");
        assert_eq!(
            scopes.grant(Observation, Read),
            Some(Grant {
                patient_only: false
            })
        );
        assert_eq!(
            scopes.grant(Observation, Search),
            Some(Grant { patient_only: true })
        );
    }

    #[test]
    fn what_is_malformed_or_conditional_grants_nothing() {
        for scope in [
            "patient/Observation.rc",                     // letters out of order
            "patient/Observation.rr",                     // twice
            "patient/Observation.x",                      // not a permission
            "patient/Observation.",                       // none
            "patient/Nonsense.rs",                        // not a resource type
            "patient/Parameters.rs",                      // not stored
            "doctor/Observation.rs",                      // not a context
            "patient/Observation.rs?category=laboratory", // a condition not evaluated
            "Observation.rs",
        ] {
            let scopes = Scopes::parse(scope);
            assert!(scopes.resource.is_empty(), "{scope}");
            assert!(scopes.grant(Observation, Read).is_none(), "{scope}");
        }
    }
}
