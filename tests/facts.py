"""Factual prompts with short, checkable answers: the accuracy check of the GGUF fast path against fp32.

Each entry is (question, pattern); an answer is right when the pattern matches it (case-insensitive).
The questions are ones a 135M instruct model can know; the point is to compare two backends on the
same weights, not to rank the model.
"""

from __future__ import annotations

import re

FACTS: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", r"\bParis\b"),
    ("What is the capital of Japan?", r"\bTokyo\b"),
    ("What is the capital of Italy?", r"\bRome\b"),
    ("What is the capital of Germany?", r"\bBerlin\b"),
    ("What is the capital of Spain?", r"\bMadrid\b"),
    ("What is the capital of the United Kingdom?", r"\bLondon\b"),
    ("How many days are there in a week?", r"\b(7|seven)\b"),
    ("How many legs does a spider have?", r"\b(8|eight)\b"),
    ("What is the largest planet in our solar system?", r"\bJupiter\b"),
    ("What is the chemical formula of water?", r"\bH2O\b|H₂O"),
    ("What color is the sky on a clear day?", r"\bblue\b"),
    ("At what temperature in degrees Celsius does water freeze?", r"\b(0|zero)\b"),
    ("At what temperature in degrees Celsius does water boil?", r"\b100\b"),
    ("Who wrote Romeo and Juliet?", r"Shakespeare"),
    ("What is 2 plus 2?", r"\b(4|four)\b"),
    ("Which planet do humans live on?", r"\bEarth\b"),
    ("How many continents are there on Earth?", r"\b(7|seven)\b"),
    ("Which gas do plants absorb from the air for photosynthesis?", r"carbon dioxide|\bCO2\b|CO₂"),
    ("What is the opposite of hot?", r"\bcold\b"),
    ("How many hours are there in a day?", r"\b24\b|twenty-four"),
    ("Who painted the Mona Lisa?", r"Leonardo|da Vinci"),
    ("What is the largest ocean on Earth?", r"\bPacific\b"),
    ("What is the currency of Japan?", r"\byen\b"),
    ("Who was the first president of the United States?", r"George Washington"),
    ("What is the closest star to the Earth?", r"\bSun\b"),
)


def is_right(answer: str, pattern: str) -> bool:
    """True when the answer holds the expected fact."""
    return re.search(pattern, answer, flags=re.IGNORECASE) is not None
