"""What a render leaves for people: manifest, HTML report, contact sheet and comparisons."""
