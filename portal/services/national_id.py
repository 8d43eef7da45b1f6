"""Resident identity card numbers of the People's Republic of China (GB 11643-1999)."""

#: GB 11643-1999: weights of the first 17 digits and the check character for sum % 11.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def check_character(first17: str) -> str:
    """The check character (``0``-``9`` or ``X``) of an 18-character ID (GB 11643-1999, ISO 7064 MOD 11-2).

    Args:
        first17 (str): the first 17 characters, all ASCII digits.

    Returns:
        str: the 18th character.

    Raises:
        ValueError: when ``first17`` is not 17 ASCII digits.
    """
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise ValueError("an ID's body is 17 digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, ID_WEIGHTS))
    return ID_CHECK[total % 11]


def national_id_valid(text: str) -> bool:
    """True for a 15-digit ID, or an 18-character ID whose check character is right (GB 11643-1999).

    Args:
        text (str): upper-case ID without spaces.
    """
    if len(text) == 15:
        return text.isascii() and text.isdigit()
    if len(text) != 18 or not (text[:17].isascii() and text[:17].isdigit()):
        return False
    return text[17] == check_character(text[:17])
