namespace Backupd.Storage.Catalog;

/// <summary>A catalog problem with a message meant for the operator (what, where, what to do).</summary>
public class CatalogException : Exception
{
    public CatalogException(string message) : base(message) { }
    public CatalogException(string message, Exception inner) : base(message, inner) { }
    public CatalogException() { }
}
