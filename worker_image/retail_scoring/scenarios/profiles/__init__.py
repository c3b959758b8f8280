"""Task profiles: what a scenario's kind of prediction means for its parameters, its output's
checks and its evaluation. One module per profile plus one line in PROFILES."""

from importlib import import_module

from retail_scoring.scenarios.profiles.base import TaskProfile

# profile -> the class implementing it, imported when a scenario of that profile is read
PROFILES = {
    "classification": "retail_scoring.scenarios.profiles.classification:Classification",
    "regression": "retail_scoring.scenarios.profiles.regression:Regression",
}


def profile_for(name: str, parameters: dict, source: str) -> TaskProfile:
    """The profile `name` with its parameters checked; ScenarioError naming `source` otherwise."""
    from retail_scoring.scenarios.document import ScenarioError

    if name not in PROFILES:
        raise ScenarioError(f"{source}: unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    module, _, cls = PROFILES[name].partition(":")
    return getattr(import_module(module), cls).from_parameters(parameters, source)
