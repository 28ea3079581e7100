"""gendrive's world: roads, vehicles, traffic, physics, rewards, metrics, backends and envs.

``import sim`` needs neither CARLA nor pygame nor a display.
"""
