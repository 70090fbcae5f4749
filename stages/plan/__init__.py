"""The render plan: its dataclasses and how it is built from a validated storyboard (segments, bridges, chaining, camera, profiles) and the content keys of its parts."""
