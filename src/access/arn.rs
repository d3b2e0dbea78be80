//! Resources (what an action is performed on) and resource patterns (what a statement names).
//!
//! Sluice prints ARNs as `arn:sluice:SERVICE:::RESOURCE`. It has one partition, region and account,
//! so in patterns and parsed ARNs those three fields are accepted whatever they say, and an ARN
//! copied from AWS (`arn:aws:codepipeline:us-east-1:111122223333:web-app`) names the same thing.

use std::fmt;

use super::action::Service;
use super::glob::Glob;

/// The resource a request acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Actions without resource-level permissions (`ListPipelines`, …) are checked against `*`.
    All,
    /// A specific resource.
    Arn(ResourceArn),
}

impl Resource {
    pub fn pipeline(pipeline: &str) -> Self {
        Self::arn(Service::CodePipeline, pipeline.to_string())
    }

    pub fn stage(pipeline: &str, stage: &str) -> Self {
        Self::arn(Service::CodePipeline, format!("{pipeline}/{stage}"))
    }

    pub fn pipeline_action(pipeline: &str, stage: &str, action: &str) -> Self {
        Self::arn(
            Service::CodePipeline,
            format!("{pipeline}/{stage}/{action}"),
        )
    }

    pub fn action_type(owner: &str, category: &str, provider: &str, version: &str) -> Self {
        Self::arn(
            Service::CodePipeline,
            format!("actiontype:{owner}/{category}/{provider}/{version}"),
        )
    }

    pub fn user(name: &str) -> Self {
        Self::arn(Service::Iam, format!("user/{name}"))
    }

    pub fn group(name: &str) -> Self {
        Self::arn(Service::Iam, format!("group/{name}"))
    }

    pub fn policy(name: &str) -> Self {
        Self::arn(Service::Iam, format!("policy/{name}"))
    }

    pub fn connection(name: &str) -> Self {
        Self::arn(Service::CodeConnections, format!("connection/{name}"))
    }

    pub fn bucket(name: &str) -> Self {
        Self::arn(Service::Sluice, format!("bucket/{name}"))
    }

    fn arn(service: Service, resource: String) -> Self {
        Resource::Arn(ResourceArn { service, resource })
    }

    /// Parses `*` or an ARN of a known service (partition, region and account are ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(Resource::All);
        }
        let parts = split_arn(text)?;
        let service = Service::from_prefix(parts.service)
            .ok_or_else(|| format!("{text:?} names an unknown service {:?}", parts.service))?;
        if parts.resource.is_empty() {
            return Err(format!("{text:?} has an empty resource part"));
        }
        if parts.resource.contains(['*', '?']) {
            return Err(format!("{text:?} is a pattern, not a resource"));
        }
        Ok(Self::arn(service, parts.resource.to_string()))
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::All => f.write_str("*"),
            Resource::Arn(arn) => arn.fmt(f),
        }
    }
}

/// A specific resource: its service and the RESOURCE part of its ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceArn {
    service: Service,
    resource: String,
}

impl ResourceArn {
    pub fn service(&self) -> Service {
        self.service
    }

    /// The RESOURCE part (`web-app/Prod/ReleaseGate`, `user/alice`).
    pub fn resource(&self) -> &str {
        &self.resource
    }
}

impl fmt::Display for ResourceArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arn:sluice:{}:::{}", self.service, self.resource)
    }
}

struct ArnParts<'a> {
    service: &'a str,
    resource: &'a str,
}

fn split_arn(text: &str) -> Result<ArnParts<'_>, String> {
    let mut parts = text.splitn(6, ':');
    let (
        Some("arn"),
        Some(_partition),
        Some(service),
        Some(_region),
        Some(_account),
        Some(resource),
    ) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    )
    else {
        return Err(format!(
            "{text:?} is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)"
        ));
    };
    Ok(ArnParts { service, resource })
}

/// What a statement's `Resource` or `NotResource` entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourcePattern {
    /// `*`: everything.
    All,
    /// An ARN pattern: its service (case-insensitive, wildcards allowed) and RESOURCE part
    /// (case-sensitive, wildcards allowed).
    Arn { service: Glob, resource: Glob },
}

impl ResourcePattern {
    /// Parses a statement's resource entry. The SERVICE of an ARN must be a known service or a
    /// wildcard pattern.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(ResourcePattern::All);
        }
        let parts = split_arn(text).map_err(|_| {
            format!(
                "{text:?} must be \"*\" or an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)"
            )
        })?;
        let service = parts.service.to_ascii_lowercase();
        if !service.contains(['*', '?']) && Service::from_prefix(&service).is_none() {
            return Err(format!(
                "{text:?} names an unknown service {:?} (known: codepipeline, iam, sluice)",
                parts.service
            ));
        }
        if parts.resource.is_empty() {
            return Err(format!("{text:?} has an empty resource part"));
        }
        Ok(ResourcePattern::Arn {
            service: Glob::new(&service),
            resource: Glob::new(parts.resource),
        })
    }

    /// Whether the pattern matches `resource`, acted on by an action of `service`.
    pub fn matches(&self, service: Service, resource: &Resource) -> bool {
        match (self, resource) {
            (ResourcePattern::All, _) => true,
            (
                ResourcePattern::Arn {
                    service: s,
                    resource: r,
                },
                Resource::All,
            ) => s.matches(service.prefix()) && r.matches_everything(),
            (
                ResourcePattern::Arn {
                    service: s,
                    resource: r,
                },
                Resource::Arn(arn),
            ) => s.matches(arn.service.prefix()) && r.matches(&arn.resource),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sluice_arns_print_without_region_or_account() {
        assert_eq!(
            Resource::pipeline("web-app").to_string(),
            "arn:sluice:codepipeline:::web-app"
        );
        assert_eq!(
            Resource::pipeline_action("web-app", "Prod", "ReleaseGate").to_string(),
            "arn:sluice:codepipeline:::web-app/Prod/ReleaseGate"
        );
        assert_eq!(
            Resource::user("alice").to_string(),
            "arn:sluice:iam:::user/alice"
        );
        assert_eq!(
            Resource::action_type("Custom", "Build", "Jenkins", "1").to_string(),
            "arn:sluice:codepipeline:::actiontype:Custom/Build/Jenkins/1"
        );
        assert_eq!(Resource::All.to_string(), "*");
    }

    #[test]
    fn aws_arns_parse_to_the_same_resource() {
        let aws =
            Resource::parse("arn:aws:codepipeline:us-east-1:111122223333:web-app/Prod").unwrap();
        assert_eq!(aws, Resource::stage("web-app", "Prod"));
        let ours = Resource::parse("arn:sluice:codepipeline:::web-app/Prod").unwrap();
        assert_eq!(aws, ours);
        assert_eq!(Resource::parse("*").unwrap(), Resource::All);
        assert!(Resource::parse("web-app").is_err());
        assert!(Resource::parse("arn:aws:s3:::bucket").is_err());
        assert!(Resource::parse("arn:sluice:codepipeline:::web-*").is_err());
    }

    #[test]
    fn patterns_ignore_partition_region_and_account() {
        let p = ResourcePattern::parse(
            "arn:aws:codepipeline:us-east-1:111122223333:web-app/Prod/ReleaseGate",
        )
        .unwrap();
        let gate = Resource::pipeline_action("web-app", "Prod", "ReleaseGate");
        assert!(p.matches(Service::CodePipeline, &gate));
        assert!(!p.matches(
            Service::CodePipeline,
            &Resource::pipeline_action("web-app", "Prod", "Other")
        ));
        assert!(!p.matches(Service::CodePipeline, &Resource::stage("web-app", "Prod")));
    }

    #[test]
    fn resource_parts_are_case_sensitive_and_services_are_not() {
        let p = ResourcePattern::parse("arn:sluice:CodePipeline:::web-app").unwrap();
        assert!(p.matches(Service::CodePipeline, &Resource::pipeline("web-app")));
        assert!(!p.matches(Service::CodePipeline, &Resource::pipeline("Web-App")));
    }

    #[test]
    fn the_service_must_match() {
        let p = ResourcePattern::parse("arn:sluice:iam:::*").unwrap();
        assert!(p.matches(Service::Iam, &Resource::user("bob")));
        assert!(!p.matches(Service::CodePipeline, &Resource::pipeline("user")));
    }

    #[test]
    fn wildcards_cross_slashes_and_colons() {
        let p = ResourcePattern::parse("arn:sluice:codepipeline:::web-app*").unwrap();
        assert!(p.matches(
            Service::CodePipeline,
            &Resource::pipeline_action("web-app", "Prod", "Gate")
        ));
        let p = ResourcePattern::parse("arn:sluice:codepipeline:::actiontype:*").unwrap();
        assert!(p.matches(
            Service::CodePipeline,
            &Resource::action_type("Custom", "Build", "J", "1")
        ));
    }

    #[test]
    fn the_all_resource_is_matched_by_star_patterns_only() {
        assert!(ResourcePattern::All.matches(Service::CodePipeline, &Resource::All));
        let any_pipeline = ResourcePattern::parse("arn:aws:codepipeline:*:*:*").unwrap();
        assert!(any_pipeline.matches(Service::CodePipeline, &Resource::All));
        assert!(!any_pipeline.matches(Service::Iam, &Resource::All));
        let one = ResourcePattern::parse("arn:aws:codepipeline:*:*:web-app").unwrap();
        assert!(!one.matches(Service::CodePipeline, &Resource::All));
    }

    #[test]
    fn malformed_patterns_are_refused_with_a_reason() {
        assert!(
            ResourcePattern::parse("web-app")
                .unwrap_err()
                .contains("must be \"*\" or an ARN")
        );
        assert!(
            ResourcePattern::parse("arn:aws:s3:::bucket")
                .unwrap_err()
                .contains("unknown service")
        );
        assert!(
            ResourcePattern::parse("arn:aws:codepipeline:::")
                .unwrap_err()
                .contains("empty")
        );
    }
}
