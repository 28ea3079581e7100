"""The learned generative traffic model (docs/generative_model.md).

- :mod:`generative.model.dataset`: training rows from recorded snapshots;
- :mod:`generative.model.network`: the mixture-density heads;
- :mod:`generative.model.train`: ``python -m generative.model.train`` writes the weights;
- :mod:`generative.model.placement`: lane-by-lane placement on any procedural road;
- :mod:`generative.model.validity`: validity rules, repair and rejection counts;
- :mod:`generative.model.sampler`: :class:`LearnedTrafficSampler` (a TrafficSampler).
"""

from generative.model.placement import RoadContext, SamplerError, road_context
from generative.model.sampler import LearnedTrafficSampler, load_net, to_actors
from generative.model.validity import ValidityCounts, Vehicles, make_valid

__all__ = [
    "LearnedTrafficSampler",
    "RoadContext",
    "SamplerError",
    "ValidityCounts",
    "Vehicles",
    "load_net",
    "make_valid",
    "road_context",
    "to_actors",
]
